// Failure test of the stream processors on the real local stack: real Kafka (transactions), the real schema
// registry, real Cassandra. The processors run as child processes; the test kills them with SIGKILL while votes
// flow, scales 1 -> 2 -> 1, and checks the exact outcome against its own independent count.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { applyCqlMigrations, createCqlClient, createKafka, createLogger } from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate, type VoteCast, type VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { eventually, repoRoot, stack, uniqueId } from '../../tests/support/stack.ts';
import { createStreamTopics, makePoll, makeVote } from './support.ts';

const options = ['red', 'green', 'blue'];

test('totals equal the distinct first votes and every vote has exactly one decision, through kill -9, rebalances and restores', async (t) => {
  t.timeout(290_000);
  const id = uniqueId('eo');
  const prefix = `t-${id}.`;
  const keyspace = `st_${id}`;
  const logger = createLogger('stream-test', 'warn');
  const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
  const admin = kafka.admin();
  await admin.connect();
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await admin.disconnect().catch(() => {});
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
    await cql.shutdown().catch(() => {});
  });

  await applyCqlMigrations({
    client: cql,
    keyspace,
    dir: fileURLToPath(new URL('../../migrations/cql/', import.meta.url)),
  });
  await createStreamTopics(admin, prefix);
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
  const encodeVote = serde.encoder('VoteCast');
  const encodePoll = serde.encoder('PollEvent');
  const decodeDecision = serde.decoder('VoteDecision');
  const decodeTally = serde.decoder('TallyUpdate');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());

  const pollId = `poll-${id}`;
  const now = Date.now();
  await producer.send({
    topic: `${prefix}polls`,
    acks: -1,
    messages: [
      {
        key: pollId,
        value: encodePoll({
          eventId: randomUUID(),
          type: 'CREATED',
          occurredAt: now,
          poll: makePoll(pollId, options, { title: 'colours', opensAt: now - 3_600_000 }),
        }),
      },
    ],
  });

  // The test's own account: the first vote of each voter (in produce order, which is partition order per voter).
  const firstVote = new Map<string, { voteId: string; optionId: string }>();
  const allVotes = new Map<string, VoteCast>();
  let seq = 0;
  const vote = (voterId: string, optionId: string, receivedAt: number) =>
    makeVote(pollId, voterId, optionId, receivedAt);
  /** One round: `fresh` new voters, `repeats` second votes of earlier voters, `late` new voters with an old event time. */
  const produceRound = async (fresh: number, repeats: number, late: number) => {
    const votes: VoteCast[] = [];
    const earlier = [...firstVote.keys()];
    for (let i = 0; i < fresh + late; i++) {
      const voter = `voter-${seq++}`;
      const receivedAt = i < fresh ? Date.now() : Date.now() - 120_000;
      votes.push(vote(voter, options[seq % 3] as string, receivedAt));
    }
    for (let i = 0; i < repeats && earlier.length > 0; i++) {
      const voter = earlier[Math.floor(Math.random() * earlier.length)] as string;
      votes.push(vote(voter, options[(seq + i) % 3] as string, Date.now()));
    }
    for (const v of votes) {
      allVotes.set(v.voteId, v);
      if (!firstVote.has(v.voterId)) firstVote.set(v.voterId, { voteId: v.voteId, optionId: v.optionId });
    }
    for (let i = 0; i < votes.length; i += 500) {
      await producer.send({
        topic: `${prefix}votes`,
        acks: -1,
        messages: votes.slice(i, i + 500).map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
      });
    }
  };

  const startProcessor = (name: string): ChildProcess => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'stream/src/main.ts'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        TOPIC_PREFIX: prefix,
        SCHEMA_SUBJECT_PREFIX: `${id}.`,
        CQL_KEYSPACE: keyspace,
        STREAM_APPLICATION_ID: `${id}-app`,
        STREAM_METRICS_PORT: '0',
        STREAM_SESSION_TIMEOUT_MS: '6000',
        STREAM_HEARTBEAT_INTERVAL_MS: '1000',
        STREAM_TRANSACTION_TIMEOUT_MS: '10000',
        STREAM_COMMIT_RECORDS_MAX: '500',
        LOG_LEVEL: process.env.STREAM_TEST_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM') t.log(`${name} exited with ${code ?? signal}`);
    });
    children.add(child);
    return child;
  };
  const stopGracefully = (c: ChildProcess) =>
    new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });

  // Decisions and tallies as committed (read_committed), read by the test independently.
  const decisions = new Map<string, VoteDecision[]>();
  let latestTally: TallyUpdate | undefined;
  const reader = kafka.consumer({ groupId: `${id}-verify`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await reader.connect();
  t.teardown(() => reader.disconnect());
  await reader.subscribe({ topics: [`${prefix}vote-decisions`, `${prefix}tallies`], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic: from, message }) => {
      if (!message.value) return;
      if (from.endsWith('vote-decisions')) {
        const d = await decodeDecision(message.value);
        const list = decisions.get(d.vote.voteId) ?? [];
        list.push(d);
        decisions.set(d.vote.voteId, list);
      } else {
        const u = await decodeTally(message.value);
        if (!latestTally || u.version > latestTally.version) latestTally = u;
      }
    },
  });
  const decided = () => [...decisions.values()].reduce((n, l) => n + l.length, 0);

  // 1 processor, then kill -9 it several times while votes flow.
  let p1 = startProcessor('p1');
  await produceRound(1500, 300, 0);
  await eventually('first decisions', async () => (decided() > 0 ? true : undefined), 90_000);
  for (let k = 0; k < 3; k++) {
    const round = produceRound(1200, 400, 100);
    await eventually('processing under way', async () => (decided() > 0 ? true : undefined), 60_000);
    p1.kill('SIGKILL');
    await round;
    p1 = startProcessor(`p1-restart-${k}`);
    await eventually(
      `progress after restart ${k}`,
      async () => (decided() >= allVotes.size * 0.5 ? true : undefined),
      90_000,
    );
  }
  // Scale 1 -> 2 -> 1 mid-stream (rebalances), then a final kill -9 and restart.
  const p2 = startProcessor('p2');
  await produceRound(1500, 500, 100);
  await new Promise((r) => setTimeout(r, 8000));
  await produceRound(1000, 500, 0);
  await stopGracefully(p2);
  await produceRound(1000, 500, 100);
  p1.kill('SIGKILL');
  startProcessor('p1-last');

  const expected: Record<string, number> = {};
  for (const { optionId } of firstVote.values()) expected[optionId] = (expected[optionId] ?? 0) + 1;
  const expectedTotal = firstVote.size;
  await eventually(
    'every vote decided and the tally complete',
    async () => (decided() >= allVotes.size && latestTally?.total === expectedTotal ? true : undefined),
    150_000,
  );

  // Every vote has exactly one decision; the counted ones are exactly the first votes.
  t.is(decisions.size, allVotes.size);
  let counted = 0;
  let late = 0;
  for (const [voteId, list] of decisions) {
    t.is(list.length, 1, `vote ${voteId} has ${list.length} decisions`);
    const d = list[0] as VoteDecision;
    const first = firstVote.get(d.vote.voterId);
    if (d.outcome === 'COUNTED') {
      counted++;
      if (d.late) late++;
      t.is(first?.voteId, voteId);
    } else {
      t.is(d.reason, 'DUPLICATE');
      t.is(d.countedVoteId, first?.voteId ?? null);
    }
  }
  t.is(counted, expectedTotal);
  t.true(late > 0, 'some late votes were counted and marked late');
  t.deepEqual(latestTally?.totals, expected);
  t.is(latestTally?.source, -1);

  // The CQL sink wrote the same absolute totals.
  const row = await eventually(
    'CQL poll_totals',
    async () => {
      const rs = await cql.execute(
        `SELECT totals, total, version FROM ${keyspace}.poll_totals WHERE poll_id = ?`,
        [pollId],
        { prepare: true },
      );
      const r = rs.first();
      return r && Number(r.get('total')) === expectedTotal ? r : undefined;
    },
    60_000,
  );
  const cqlTotals: Record<string, number> = {};
  for (const [k, v] of Object.entries(row.get('totals') as Record<string, unknown>)) cqlTotals[k] = Number(v);
  t.deepEqual(cqlTotals, expected);
});
