// Issue 12, item 3: a poison record never stops counting. Garbage bytes, a record with an unknown schema id and a
// tombstone go into `votes` between valid votes, and poison into every other consumed topic (tally-partials,
// tallies, vote-decisions: each of its consumers, the analytics stage too), on the real stack with the three services as processes. Every poison record is in
// `dead-letters` once per consumer that met it, with its source topic/partition/offset, reason and consumer in
// headers; the valid votes around them are counted exactly once (results API, CQL, receipts); nothing restarts.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  createPoll,
  devToken,
  eventually,
  freePort,
  groupCommitted,
  isolatedEnv,
  makeVote,
  migrateKeyspace,
  type RunningVotestream,
  repoRoot,
  stack,
  startVotestream,
  uniqueId,
} from '@votestream/devstack';
import { readReceipts } from '@votestream/read-models';
import {
  createCqlClient,
  createKafka,
  createLogger,
  deadLetterHeaders,
  readTopicToEnd,
  topicNames,
} from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import test from 'ava';
import type { KafkaMessage } from 'kafkajs';

const VALID_VOTES = 12;

test('poison records in every consumed topic are dead-lettered with their source and reason; the votes around them count once', async (t) => {
  t.timeout(8 * 60_000);
  const id = uniqueId('dlq');
  const prefix = `${id}.`;
  const topics = topicNames(prefix);
  const keyspace = `ks_${id}`;
  const pollId = `poll-${id}`;
  const app = `${id}-stream`;
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
  });
  await migrateKeyspace(keyspace);
  const streamMetricsPort = await freePort();
  const system: RunningVotestream = await startVotestream({
    prefix,
    ports: { ingest: await freePort(), projections: await freePort(), streamMetrics: streamMetricsPort },
    logDir: join(repoRoot, 'test-results/dead-letters-logs'),
    env: {
      ...isolatedEnv(id),
      STREAM_GRACE_MS: '1000',
    },
  });
  t.teardown(() => system.stop());
  let restarted = false;
  for (const p of [system.ingest, system.stream, system.projections]) {
    void p.exited.then(() => {
      restarted = true;
    });
  }
  const api = system.apiUrl;
  await createPoll(api, await devToken(`${pollId}-admin`, { admin: true }), { pollId, options: ['north', 'south'] });

  const logger = createLogger('dead-letters-test', 'warn');
  const kafka = createKafka({ clientId: 'dead-letters-test', brokers: stack.kafkaBrokers, logger });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, records: ['VoteCast'] });
  const encodeVote = serde.encoder('VoteCast');
  const garbage = Buffer.from('this is not avro at all \u0000\u00ff');
  // Confluent wire format (magic 0) naming a schema id the registry does not have.
  const unknownSchema = Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0x01]), Buffer.from([2, 4, 6, 8])]);

  /** Sends one record to partition 0 of `topic`, returns its offset. */
  const put = async (topic: string, key: string, value: Buffer | null) => {
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ key, value, partition: 0 }] });
    return String(meta?.baseOffset);
  };
  const expectedVotes = new Map<string, { voteId: string; optionId: string }>();
  const vote = async (i: number) => {
    const voterId = `${id}-voter-${i}`;
    const v = makeVote(pollId, voterId, i % 3 === 0 ? 'south' : 'north');
    await put(topics.votes, `${pollId}/${voterId}`, encodeVote(v));
    expectedVotes.set(voterId, { voteId: v.voteId, optionId: v.optionId });
  };

  // votes: valid, garbage, valid, unknown schema, valid, tombstone, the rest valid; all on partition 0.
  const poison: { topic: string; offset: string; reason: string; consumers: string[] }[] = [];
  const poisonIn = async (topic: string, value: Buffer | null, reason: string, consumers: string[]) =>
    poison.push({ topic, offset: await put(topic, `poison-${randomUUID()}`, value), reason, consumers });
  const dedupe = [`${app}-dedupe`];
  await vote(0);
  await poisonIn(topics.votes, garbage, 'undecodable', dedupe);
  await vote(1);
  await poisonIn(topics.votes, unknownSchema, 'unknown_schema', dedupe);
  await vote(2);
  await poisonIn(topics.votes, null, 'no_value', dedupe);
  for (let i = 3; i < VALID_VOTES; i++) await vote(i);
  // The other consumed topics.
  await poisonIn(topics.tallyPartials, garbage, 'undecodable', [`${app}-tally`]);
  await poisonIn(topics.tallyPartials, unknownSchema, 'unknown_schema', [`${app}-tally`]);
  const talliesConsumers = [`${app}-cql-sink`, `${id}-projections-tallies`];
  await poisonIn(topics.tallies, garbage, 'undecodable', talliesConsumers);
  await poisonIn(topics.tallies, unknownSchema, 'unknown_schema', talliesConsumers);
  // vote-decisions: projections' receipts and the stream's analytics stage each meet it.
  const decisionsConsumers = [`${id}-projections-receipts`, `${app}-analytics`];
  await poisonIn(topics.voteDecisions, garbage, 'undecodable', decisionsConsumers);
  await poisonIn(topics.voteDecisions, unknownSchema, 'unknown_schema', decisionsConsumers);
  // Valid votes after the poison in the downstream topics: counting goes on.
  for (let i = VALID_VOTES; i < VALID_VOTES + 3; i++) await vote(i);
  const total = VALID_VOTES + 3;
  const expectedTotals = { north: 0, south: 0 };
  for (const v of expectedVotes.values()) expectedTotals[v.optionId as 'north' | 'south']++;

  // Dead letters: one per (poison record, consumer that met it), read until that many arrived.
  const wanted = poison.reduce((n, p) => n + p.consumers.length, 0);
  type Letter = { key: string; value: Buffer | null; headers: Record<string, string> };
  const toLetter = (message: KafkaMessage): Letter => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
    return { key: String(message.key), value: message.value, headers };
  };
  const arrived: Letter[] = [];
  const consumer = kafka.consumer({ groupId: `${id}-dlq-reader`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic: topics.deadLetters, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      arrived.push(toLetter(message));
    },
  });
  t.teardown(() => consumer.disconnect());
  await eventually(`${wanted} dead letters`, async () => (arrived.length >= wanted ? true : undefined), 120_000);

  const results = await eventually(
    `results with ${total} votes`,
    async () => {
      const r = (await (await fetch(`${api}/v1/polls/${pollId}/results`)).json()) as {
        total: number;
        totals: Record<string, number>;
      };
      return r.total >= total ? r : undefined;
    },
    120_000,
  );
  t.deepEqual(results.totals, expectedTotals);
  t.is(results.total, total);
  // Each valid vote counted exactly once: its receipt says counted.
  for (const [voterId, v] of expectedVotes) {
    const receipts = await eventually(`receipt of ${voterId}`, async () => {
      const rs = await readReceipts(cql, keyspace, pollId, voterId);
      return rs.length > 0 ? rs : undefined;
    });
    t.deepEqual(
      receipts.map((r) => [r.voteId, r.status]),
      [[v.voteId, 'counted']],
    );
  }
  // The CQL tally sink got past the poison in `tallies` too.
  const cqlTotal = await eventually('CQL poll_totals', async () => {
    const rs = await cql.execute(`SELECT total FROM ${keyspace}.poll_totals WHERE poll_id = ?`, [pollId], {
      prepare: true,
    });
    const n = Number(rs.first()?.get('total') ?? 0);
    return n >= total ? n : undefined;
  });
  t.is(cqlTotal, total);

  // Every dead letter: the source, the reason and who gave up on it, exactly once each; bytes unchanged.
  // Every consumer has committed past the poison it met, so any letter it wrote for one (a duplicate too) is in
  // dead-letters now; read it to its end.
  const passed = new Map<string, { group: string; topic: string; offset: bigint }>();
  for (const p of poison)
    for (const group of p.consumers) {
      const past = BigInt(p.offset) + 1n;
      const key = `${group} ${p.topic}`;
      if ((passed.get(key)?.offset ?? -1n) < past) passed.set(key, { group, topic: p.topic, offset: past });
    }
  for (const { group, topic, offset } of passed.values())
    await groupCommitted(group, topic, { upTo: new Map([[0, offset]]) });
  const letters: Letter[] = [];
  await readTopicToEnd(kafka, topics.deadLetters, (_partition, message) => void letters.push(toLetter(message)), {
    timeoutMs: 60_000,
    groupIdPrefix: `${id}-dlq-final`,
  });
  const h = deadLetterHeaders;
  const seen = letters.map(
    (l) =>
      `${l.headers[h.sourceTopic]}@${l.headers[h.sourceOffset]} ${l.headers[h.reason]} ${l.headers[h.consumer]} p${l.headers[h.sourcePartition]}`,
  );
  const expected = poison.flatMap((p) => p.consumers.map((c) => `${p.topic}@${p.offset} ${p.reason} ${c} p0`));
  t.deepEqual([...seen].sort(), [...expected].sort());
  for (const l of letters) {
    t.true((l.headers[h.error] ?? '').length > 0, 'the decoder error is in the headers');
    const src = poison.find((p) => p.topic === l.headers[h.sourceTopic] && p.offset === l.headers[h.sourceOffset]);
    const bytes = src?.reason === 'undecodable' ? garbage : src?.reason === 'unknown_schema' ? unknownSchema : null;
    t.deepEqual(l.value, bytes, 'the value is the poison record, bytes unchanged');
    t.true(l.key.startsWith('poison-'));
  }

  // The metric, and no process restarted (no crash loop).
  const metrics = await (await fetch(`http://127.0.0.1:${streamMetricsPort}/metrics`)).text();
  t.regex(metrics, new RegExp(`stream_dead_letter_total\\{topic="${topics.votes}",reason="undecodable"[^}]*\\} 1\n`));
  t.regex(
    metrics,
    new RegExp(`stream_dead_letter_total\\{topic="${topics.votes}",reason="unknown_schema"[^}]*\\} 1\n`),
  );
  t.false(restarted, 'no service exited');
});
