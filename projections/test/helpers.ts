import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeVote } from '@votestream/devstack';
import {
  applyCqlMigrations,
  createCqlClient,
  createKafka,
  createLogger,
  createMetricsRegistry,
  topicNames,
} from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate, type VoteDecision } from '@votestream/schemas';
import { CqlTallySink } from '@votestream/stream';
import type { ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import mqtt, { type MqttClient } from 'mqtt';
import { loadProjectionsConfig, type ProjectionsConfig } from '../src/index.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const registryUrl = 'http://127.0.0.1:8081/apis/ccompat/v7';
export const projectionsPassword = (): string =>
  readFileSync(`${repoRoot}.stack/secrets/mqtt-projections.password`, 'utf8').trim();

/** An isolated world for one test file: its own topics, keyspace, Redis prefix and registry subjects. */
export async function createWorld(t: ExecutionContext, name: string) {
  const id = randomUUID().replaceAll('-', '').slice(0, 10);
  const topicPrefix = `t-${name}-${id}.`;
  const keyspace = `t_${name.replaceAll('-', '_')}_${id}`;
  const redisPrefix = `t-${name}-${id}:`;
  const subjectPrefix = `t-${name}-${id}.`;
  const logger = createLogger(`test-${name}`, process.env.TEST_LOG_LEVEL ?? 'silent');
  const topics = topicNames(topicPrefix);
  const kafka = createKafka({ clientId: `test-${name}`, brokers: ['127.0.0.1:9092'], logger });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    // Leaders are awaited below: KafkaJS's own wait gives up on UNKNOWN_TOPIC_OR_PARTITION when the broker is busy.
    waitForLeaders: false,
    topics: [
      { topic: topics.tallies, numPartitions: 2, replicationFactor: 1 },
      { topic: topics.voteDecisions, numPartitions: 2, replicationFactor: 1 },
      { topic: topics.deadLetters, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  await eventually(
    async () => {
      try {
        const { topics: md } = await admin.fetchTopicMetadata({ topics: [topics.tallies, topics.voteDecisions] });
        return md.every((x) => x.partitions.length > 0 && x.partitions.every((p) => p.leader >= 0));
      } catch {
        return false;
      }
    },
    (ok) => ok,
    30_000,
    'topic leaders',
  );
  const cql = createCqlClient({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1' });
  await applyCqlMigrations({ client: cql, keyspace, dir: `${repoRoot}migrations/cql/` });
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
  const serde = await createAvroSerde({ registryUrl, subjectPrefix, records: ['TallyUpdate', 'VoteDecision'] });
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const encodeTally = serde.encoder('TallyUpdate');
  const encodeDecision = serde.encoder('VoteDecision');
  const mqttClients: MqttClient[] = [];

  t.teardown(async () => {
    for (const c of mqttClients) await c.endAsync(true).catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topics.tallies, topics.voteDecisions, topics.deadLetters] }).catch(() => {});
    await admin.disconnect().catch(() => {});
    const keys = await redis.keys(`${redisPrefix}*`).catch(() => [] as string[]);
    if (keys.length) await redis.del(...keys).catch(() => {});
    redis.disconnect();
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
    await cql.shutdown().catch(() => {});
  });

  const config = (overrides: Record<string, string> = {}): ProjectionsConfig =>
    loadProjectionsConfig({
      TOPIC_PREFIX: topicPrefix,
      CQL_KEYSPACE: keyspace,
      REDIS_PREFIX: redisPrefix,
      HTTP_PORT: '0',
      PROJECTIONS_METRICS_PORT: '0',
      MQTT_PASSWORD: projectionsPassword(),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ...overrides,
    });

  return {
    topicPrefix,
    keyspace,
    redisPrefix,
    subjectPrefix,
    topics,
    admin,
    cql,
    redis,
    logger,
    config,
    async produceTallies(tallies: TallyUpdate[]) {
      await producer.send({
        topic: topics.tallies,
        acks: -1,
        messages: tallies.map((x) => ({ key: x.pollId, value: encodeTally(x) })),
      });
    },
    async produceDecisions(decisions: VoteDecision[]) {
      await producer.send({
        topic: topics.voteDecisions,
        acks: -1,
        messages: decisions.map((d) => ({ key: `${d.vote.pollId}/${d.vote.voterId}`, value: encodeDecision(d) })),
      });
    },
    /**
     * Runs the stream's real CQL tally sink (stream/src/sink/cql-tally-sink.ts) on this world's tallies topic,
     * so poll_totals is written by the production writer, not by the test. Stopped at teardown.
     */
    async startStreamCqlSink() {
      const sink = new CqlTallySink({
        // Nothing undecodable is written in these tests; the dead-letter topic name is the world's own.
        deadLetters: { producer, topic: topics.deadLetters },
        kafka,
        cql,
        keyspace,
        talliesTopic: topics.tallies,
        groupId: `${topicPrefix}cql-sink`,
        serde,
        logger,
        registry: createMetricsRegistry('projections-test-sink'),
        onFatal: (err) => t.fail(`the CQL tally sink's consumer stopped for good: ${String(err)}`),
      });
      await sink.start();
      t.teardown(() => sink.stop());
    },
    /** An MQTT client closed at teardown. */
    async mqttClient(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
      const c = await mqtt.connectAsync(url, {
        protocolVersion: 5,
        reconnectPeriod: 200,
        connectTimeout: 5000,
        ...options,
      });
      mqttClients.push(c);
      return c;
    },
  };
}

let versionClock = Date.now() * 1000;
/** A TallyUpdate as the stream's global tally stage would write it; versions strictly increase per process. */
export function tally(pollId: string, totals: Record<string, number>, extra: Partial<TallyUpdate> = {}): TallyUpdate {
  versionClock += 1;
  const now = Date.now();
  const windowStart = Math.floor(now / 1000) * 1000;
  return {
    pollId,
    source: -1,
    version: versionClock,
    totals,
    total: Object.values(totals).reduce((a, b) => a + b, 0),
    lateVotes: 0,
    windows: [{ windowStart, windowEnd: windowStart + 1000, counts: totals, late: 0 }],
    watermark: now - 2000,
    asOf: now,
    final: false,
    ...extra,
    audit: extra.audit ?? null,
  };
}

export function decision(
  pollId: string,
  voterId: string,
  voteId: string,
  outcome: 'COUNTED' | 'REJECTED',
  extra: Partial<VoteDecision> = {},
): VoteDecision {
  const now = Date.now();
  return {
    // The vote as ingest would write it (the kit's); receipts read none of its evidence.
    vote: { ...makeVote(pollId, voterId, 'yes', now - 10), voteId },
    outcome,
    reason: outcome === 'COUNTED' ? null : 'DUPLICATE',
    countedVoteId: null,
    late: false,
    windowStart: Math.floor(now / 1000) * 1000,
    decidedAt: now,
    ...extra,
  };
}

/** Polls `probe` until it returns a value for which `done` holds, or fails after `deadlineMs` (generous, never asserted). */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  deadlineMs = 30_000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Collects JSON messages per topic from an MQTT subscription. */
export function collect(client: MqttClient) {
  const byTopic = new Map<string, { version: number; retain: boolean; body: Record<string, unknown> }[]>();
  client.on('message', (topic, payload, packet) => {
    const body = JSON.parse(payload.toString()) as Record<string, unknown> & { version: number };
    const list = byTopic.get(topic) ?? [];
    list.push({ version: body.version, retain: packet.retain, body });
    byTopic.set(topic, list);
  });
  return {
    of: (topic: string) => byTopic.get(topic) ?? [],
    last: (topic: string) => (byTopic.get(topic) ?? []).at(-1),
  };
}
