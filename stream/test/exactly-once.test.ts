// Failure test of the stream processors on the real local stack: real Kafka (transactions), the real schema
// registry, real Cassandra. The processors run as child processes; the test kills them with SIGKILL while votes
// flow (each kill after that process committed), scales 1 -> 2 -> 1 (ownership checked on each process's metrics),
// fails on any exit it did not cause, and checks the exact outcome against its own independent count.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readTopicToEnd, withTimeout } from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate, type VoteCast, type VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { freePort } from '../../libs/devstack/src/process.ts';
import { eventually, repoRoot, stack } from '../../tests/support/stack.ts';
import { pseudonymOf } from '../src/analytics/pseudonymise.ts';
import { makePoll, makeVote, streamTest } from './support.ts';

const options = ['red', 'green', 'blue'];

// Deadlines of the test's own waits; t.timeout is their sum, so a miss fails with the wait's name, never AVA's.
const SETUP_MS = 60_000;
const FIRST_DECISIONS_MS = 90_000;
const COMMITTED_MS = 60_000;
const PROGRESS_MS = 90_000;
const SCALE_MS = 90_000;
const FINAL_MS = 150_000;
const CQL_MS = 60_000;
const EXIT_MS = 30_000;
const VOTE_PARTITIONS = 4; // createStreamTopics' default

test('totals equal the distinct first votes, every vote has exactly one decision and every decision one analytics record, through kill -9, rebalances and restores', async (t) => {
  t.timeout(
    SETUP_MS +
      FIRST_DECISIONS_MS +
      3 * (2 * COMMITTED_MS + EXIT_MS + PROGRESS_MS) +
      COMMITTED_MS +
      2 * SCALE_MS +
      EXIT_MS +
      COMMITTED_MS +
      EXIT_MS +
      FINAL_MS +
      CQL_MS +
      FINAL_MS +
      2 * EXIT_MS,
  );
  const { id, prefix, keyspace, kafka, cql, children } = await streamTest(t, 'eo', { cql: true });
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

  // Each processor serves /metrics on its own port: the test sees what that process owns (stream_tasks_active)
  // and has committed (stream_commits_total), per stage, instead of guessing from the output topics or log text.
  // Every exit must be one the test caused (expectExit set before it kills or stops the process).
  interface Proc {
    name: string;
    child: ChildProcess;
    metricsPort: number;
    expectExit: boolean;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }
  const unexpectedExits: string[] = [];
  const startProcessor = async (name: string): Promise<Proc> => {
    const metricsPort = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'stream/src/main.ts'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        TOPIC_PREFIX: prefix,
        SCHEMA_SUBJECT_PREFIX: `${id}.`,
        CQL_KEYSPACE: keyspace,
        STREAM_APPLICATION_ID: `${id}-app`,
        STREAM_METRICS_PORT: String(metricsPort),
        STREAM_METRICS_HOST: '127.0.0.1',
        STREAM_SESSION_TIMEOUT_MS: '6000',
        STREAM_HEARTBEAT_INTERVAL_MS: '1000',
        STREAM_TRANSACTION_TIMEOUT_MS: '10000',
        STREAM_COMMIT_RECORDS_MAX: '500',
        LOG_LEVEL: process.env.STREAM_TEST_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const proc: Proc = {
      name,
      child,
      metricsPort,
      expectExit: false,
      exited: new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          children.delete(child);
          if (!proc.expectExit)
            unexpectedExits.push(`${name} exited with ${code ?? signal} (the test did not stop it)`);
          resolve({ code, signal });
        }),
      ),
    };
    children.add(child);
    return proc;
  };
  /** The value of `name{stage="<stage>"}` on the process's /metrics; undefined while it does not answer yet. */
  const metric = async (p: Proc, name: string, stage: string): Promise<number | undefined> => {
    const res = await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`).catch(() => undefined);
    if (!res?.ok) return undefined;
    const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`stage="${stage}"`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  /** Polls `check` until true; fails at once if a processor exited on its own, or after `ms` naming `what`. */
  const until = async (what: string, check: () => Promise<boolean> | boolean, ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (unexpectedExits.length > 0) throw new Error(`${unexpectedExits.join('; ')} while waiting for ${what}`);
      if (await check()) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** The dedupe stage of `p` has committed at least `n` transactions (it owns partitions and finished work). */
  const committed =
    (p: Proc, n = 1) =>
    async () =>
      ((await metric(p, 'stream_commits_total', 'dedupe')) ?? 0) >= n;
  const kill = async (p: Proc) => {
    p.expectExit = true;
    p.child.kill('SIGKILL');
    t.like(await withTimeout(p.exited, EXIT_MS, `${p.name} exits after SIGKILL`), { signal: 'SIGKILL' });
  };
  const stopGracefully = async (p: Proc) => {
    p.expectExit = true;
    p.child.kill('SIGTERM');
    t.deepEqual(await withTimeout(p.exited, EXIT_MS, `${p.name} exits after SIGTERM`), { code: 0, signal: null });
  };

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
  // The analytics stage's output as committed, counted as it arrives (checked record by record at the end).
  let analysed = 0;
  const analyticsReader = kafka.consumer({
    groupId: `${id}-verify-analytics`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  await analyticsReader.connect();
  t.teardown(() => analyticsReader.disconnect());
  await analyticsReader.subscribe({ topics: [`${prefix}analytics-votes`], fromBeginning: true });
  await analyticsReader.run({
    eachBatch: async ({ batch }) => {
      analysed += batch.messages.length;
    },
  });

  // 1 processor, then kill -9 it several times while votes flow. Every kill lands on a process whose own
  // metrics show committed dedupe transactions, while a round of votes is still being produced.
  let p1 = await startProcessor('p1');
  await produceRound(1500, 300, 0);
  await until('first decisions', () => decided() > 0, FIRST_DECISIONS_MS);
  for (let k = 0; k < 3; k++) {
    await until(`${p1.name} has committed`, committed(p1), COMMITTED_MS);
    const seen = (await metric(p1, 'stream_commits_total', 'dedupe')) ?? 0;
    const round = produceRound(1200, 400, 100);
    await until(`${p1.name} committed part of round ${k}`, committed(p1, seen + 1), COMMITTED_MS);
    await kill(p1);
    await round;
    p1 = await startProcessor(`p1-restart-${k}`);
    await until(`progress after restart ${k}`, () => decided() >= allVotes.size * 0.5, PROGRESS_MS);
  }
  // Scale 1 -> 2 -> 1 mid-stream (rebalances). p2 must own dedupe partitions and commit on them before it is
  // stopped, and p1 must own all of them again afterwards (tasks_active from each process's metrics).
  await until(`${p1.name} has committed`, committed(p1), COMMITTED_MS);
  const p2 = await startProcessor('p2');
  await produceRound(1500, 500, 100);
  await until(
    'p1 and p2 each own dedupe partitions and p2 has committed',
    async () =>
      ((await metric(p2, 'stream_tasks_active', 'dedupe')) ?? 0) > 0 &&
      ((await metric(p1, 'stream_tasks_active', 'dedupe')) ?? 0) > 0 &&
      (await committed(p2)()),
    SCALE_MS,
  );
  await produceRound(1000, 500, 0);
  await stopGracefully(p2);
  await until(
    `${p1.name} owns all ${VOTE_PARTITIONS} dedupe partitions again`,
    async () => (await metric(p1, 'stream_tasks_active', 'dedupe')) === VOTE_PARTITIONS,
    SCALE_MS,
  );
  // A final kill -9 after p1 committed on the partitions it took back, and a restart.
  const before = (await metric(p1, 'stream_commits_total', 'dedupe')) ?? 0;
  const last = produceRound(1000, 500, 100);
  await until(`${p1.name} committed after the scale-in`, committed(p1, before + 1), COMMITTED_MS);
  await kill(p1);
  await last;
  const final = await startProcessor('p1-last');

  const expected: Record<string, number> = {};
  for (const { optionId } of firstVote.values()) expected[optionId] = (expected[optionId] ?? 0) + 1;
  const expectedTotal = firstVote.size;
  await until(
    'every vote decided and the tally complete',
    () => decided() >= allVotes.size && latestTally?.total === expectedTotal,
    FINAL_MS,
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
    CQL_MS,
  );
  const cqlTotals: Record<string, number> = {};
  for (const [k, v] of Object.entries(row.get('totals') as Record<string, unknown>)) cqlTotals[k] = Number(v);
  t.deepEqual(cqlTotals, expected);

  // The analytics stage (in the same processes, killed and rebalanced with them): exactly one analytics record
  // per decision. Read to its end once every process has stopped, and compared record by record with what the
  // decisions and the poll's salt (CQL) say.
  await until('an analytics record for every decision', () => analysed >= allVotes.size, FINAL_MS);
  await stopGracefully(final);
  const salt = (
    await cql.execute(`SELECT salt FROM ${keyspace}.analytics_salts WHERE poll_id = ?`, [pollId], { prepare: true })
  )
    .first()
    .get('salt') as Buffer;
  const decodeAnalytics = serde.decoder('VoteAnalytics');
  // Keyed by partition and offset: a batch the reading consumer is handed twice is one set of records; two
  // records of one decision are at two offsets.
  const byOffset = new Map<string, string>();
  await readTopicToEnd(
    kafka,
    `${prefix}analytics-votes`,
    async (p, m) => {
      if (!m.value) return;
      const a = await decodeAnalytics(m.value);
      byOffset.set(`${p}:${m.offset}`, `${m.key?.toString()} ${a.optionId} ${a.counted} ${a.reason}`);
    },
    { timeoutMs: EXIT_MS, groupIdPrefix: `${id}-analytics-end` },
  );
  const fromDecisions = [...decisions.values()].map(([d]) => {
    const { vote } = d as VoteDecision;
    return `${pollId}/${pseudonymOf(salt, vote.voterId)} ${vote.optionId} ${d?.outcome === 'COUNTED'} ${d?.reason}`;
  });
  const analytics = [...byOffset.values()];
  if (analytics.length !== allVotes.size) {
    // Where the surplus or the gap is: the records of each decision found more (or less) often than expected.
    const want = new Map<string, number>();
    for (const l of fromDecisions) want.set(l, (want.get(l) ?? 0) + 1);
    const at = new Map<string, string[]>();
    for (const [offset, l] of byOffset) at.set(l, [...(at.get(l) ?? []), offset]);
    const off = [...new Set([...want.keys(), ...at.keys()])].filter(
      (l) => (want.get(l) ?? 0) !== (at.get(l)?.length ?? 0),
    );
    t.log(
      `${off.length} decisions with another number of analytics records; e.g.`,
      off.slice(0, 10).map((l) => `${l} at ${at.get(l)?.join(',') ?? 'none'}`),
    );
  }
  t.is(analytics.length, allVotes.size, 'one analytics record per decision, none twice');
  t.deepEqual(analytics.sort(), fromDecisions.sort());
  t.deepEqual(unexpectedExits, [], 'no processor exited unless the test killed or stopped it');
});
