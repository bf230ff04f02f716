// Zombie fencing on the real stack: processor A is frozen with SIGSTOP while it has a Kafka transaction open,
// processor B takes over A's partitions after A's session timed out and initialises the same transactional ids
// (which fences A and aborts its open transaction), then A is resumed with SIGCONT. A's late commit must be
// refused, its open transaction's records must never reach a read_committed consumer, and the outcome must be
// exact: one decision per vote, totals = the distinct first votes the test counted itself.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { withTimeout } from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate, type VoteCast, type VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { eventually, stack } from '../../tests/support/stack.ts';
import { makePoll, makeVote, type Processor, sleep, startProcessor, streamTest, waitForTasks } from './support.ts';

const options = ['red', 'green', 'blue'];
/** How long the LSO must stay below A's open records while A is frozen, to call the transaction open. */
const openTransactionObservedMs = 1000;

test('a paused processor is fenced by its successor: its open transaction is aborted and its late commit refused', async (t) => {
  t.timeout(170_000);
  const { id, prefix, kafka, admin, children } = await streamTest(t, 'zb');
  let frozen: ChildProcess | undefined;
  t.teardown(() => {
    if (frozen) frozen.kill('SIGCONT'); // before the set-up's teardown kills it (teardowns run last first)
  });
  const decisionsTopic = `${prefix}vote-decisions`;
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
  const encodeVote = serde.encoder('VoteCast');
  const decodeDecision = serde.decoder('VoteDecision');
  const decodeTally = serde.decoder('TallyUpdate');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());

  const pollId = `poll-${id}`;
  await producer.send({
    topic: `${prefix}polls`,
    acks: -1,
    messages: [
      {
        key: pollId,
        value: serde.encoder('PollEvent')({
          eventId: randomUUID(),
          type: 'CREATED',
          occurredAt: Date.now(),
          poll: makePoll(pollId, options),
        }),
      },
    ],
  });

  // What was committed (read_committed), and every record written at all (read_uncommitted, to see A's open
  // transaction), both by (partition, offset).
  const committed = new Map<string, VoteDecision[]>();
  const committedAt = new Set<string>();
  let latestTally: TallyUpdate | undefined;
  const uncommitted = new Map<number, Array<{ offset: bigint; voteId: string }>>();
  const reader = kafka.consumer({ groupId: `${id}-committed`, readUncommitted: false, maxWaitTimeInMs: 100 });
  const rawReader = kafka.consumer({ groupId: `${id}-uncommitted`, readUncommitted: true, maxWaitTimeInMs: 100 });
  t.teardown(() => reader.disconnect());
  t.teardown(() => rawReader.disconnect());
  await reader.connect();
  await rawReader.connect();
  await reader.subscribe({ topics: [decisionsTopic, `${prefix}tallies`], fromBeginning: true });
  await rawReader.subscribe({ topics: [decisionsTopic], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic, partition, message }) => {
      if (!message.value) return;
      if (topic === decisionsTopic) {
        const d = await decodeDecision(message.value);
        committedAt.add(`${partition}@${message.offset}`);
        const list = committed.get(d.vote.voteId) ?? [];
        list.push(d);
        committed.set(d.vote.voteId, list);
      } else {
        const u = await decodeTally(message.value);
        if (!latestTally || u.version > latestTally.version) latestTally = u;
      }
    },
  });
  // Where the read_uncommitted reader stands per partition, and the log end (high watermark) its last fetch saw;
  // marker-only fetches count too.
  const rawAt = new Map<number, { next: bigint; high: bigint }>();
  rawReader.on(rawReader.events.END_BATCH_PROCESS, ({ payload }) => {
    const next = BigInt(payload.lastOffset) + 1n;
    rawAt.set(payload.partition, { next, high: next + BigInt(payload.offsetLag) });
  });
  await rawReader.run({
    eachMessage: async ({ partition, message }) => {
      if (!message.value) return;
      const d = await decodeDecision(message.value);
      const list = uncommitted.get(partition) ?? [];
      list.push({ offset: BigInt(message.offset), voteId: d.vote.voteId });
      uncommitted.set(partition, list);
    },
  });
  const decided = () => committed.size;

  // A steady stream of votes (new voters and second votes of earlier ones) until told to stop.
  const firstVote = new Map<string, { voteId: string; optionId: string }>();
  const allVotes = new Map<string, VoteCast>();
  let seq = 0;
  let producing = true;
  const stream = (async () => {
    while (producing) {
      const earlier = [...firstVote.keys()];
      const votes: VoteCast[] = [];
      for (let i = 0; i < 30; i++)
        votes.push(makeVote(pollId, `voter-${seq++}`, options[seq % 3] as string, Date.now()));
      for (let i = 0; i < 10 && earlier.length > 0; i++) {
        const voter = earlier[Math.floor(Math.random() * earlier.length)] as string;
        votes.push(makeVote(pollId, voter, options[(seq + i) % 3] as string, Date.now()));
      }
      for (const v of votes) {
        allVotes.set(v.voteId, v);
        if (!firstVote.has(v.voterId)) firstVote.set(v.voterId, { voteId: v.voteId, optionId: v.optionId });
      }
      await producer.send({
        topic: `${prefix}votes`,
        acks: -1,
        messages: votes.map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
      });
      await sleep(100);
    }
  })();
  t.teardown(async () => {
    producing = false;
    await stream.catch(() => {});
  });

  const env = {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    STREAM_APPLICATION_ID: `${id}-app`,
    STREAM_STAGES: 'dedupe,tally',
    STREAM_SESSION_TIMEOUT_MS: '6000',
    STREAM_HEARTBEAT_INTERVAL_MS: '1000',
    // Longer than the takeover: A's transaction is ended by B's fence, not by the broker's timeout.
    STREAM_TRANSACTION_TIMEOUT_MS: '90000',
    STREAM_COMMIT_RECORDS_MAX: '50',
  };
  const a = await startProcessor(t, children, 'A', env);
  await eventually('A processing', async () => (decided() >= 200 ? true : undefined), 90_000);

  // Freeze A until the broker holds an open transaction of A on vote-decisions: records at or past the last
  // stable offset (admin offsets are read_committed, so `high` is the LSO) that stay there while A is frozen.
  const lso = async () =>
    new Map((await admin.fetchTopicOffsets(decisionsTopic)).map((o) => [o.partition, BigInt(o.offset)]));
  let zombie: Array<{ partition: number; offset: bigint; voteId: string }> = [];
  for (let attempt = 1; attempt <= 30 && zombie.length === 0; attempt++) {
    a.child.kill('SIGSTOP');
    frozen = a.child;
    // Wait until the read_uncommitted reader has fetched to the log end on every partition and holds records at or
    // past the LSO: what A had sent of its open transaction (bounded; if none shows, A is resumed and frozen again).
    const seen = await eventually(
      'the read_uncommitted reader to hold records of an open transaction of A',
      async () => {
        if ([...rawAt.values()].some((x) => x.next < x.high)) return undefined;
        const before = await lso();
        const open = [...uncommitted].flatMap(([partition, list]) =>
          list.filter((r) => r.offset >= (before.get(partition) ?? 0n)).map((r) => ({ partition, ...r })),
        );
        return open.length > 0 ? { before, open } : undefined;
      },
      3000,
    ).catch(() => ({ before: new Map<number, bigint>(), open: [] }));
    const { before, open } = seen;
    if (open.length > 0) {
      // The open transaction must stay open while A is frozen: a commit A had already asked for before SIGSTOP
      // would still move the LSO. KafkaJS 2.2.4 cannot ask the coordinator (no DescribeTransactions), so this is
      // an observation over a fixed window, not a wait for a condition.
      await sleep(openTransactionObservedMs);
      const after = await lso();
      if (open.every((r) => after.get(r.partition) === before.get(r.partition))) zombie = open;
    }
    if (zombie.length === 0) {
      a.child.kill('SIGCONT');
      frozen = undefined;
      await sleep(100 + Math.floor(Math.random() * 400));
    }
  }
  t.true(zombie.length > 0, 'A was frozen with an open transaction holding decisions');
  t.log(`A frozen with ${zombie.length} uncommitted decisions open on vote-decisions`);
  const zombiePartitions = new Set(zombie.map((r) => r.partition));

  // B joins; the group gives it every partition once A's session (6 s) expired; creating its tasks initialises
  // the same transactional ids, which fences A and aborts A's open transaction (the LSO moves past it).
  const decidedBeforeB = decided();
  const b = await startProcessor(t, children, 'B', env);
  await waitForTasks(b, 'dedupe', 4);
  await eventually(
    "A's open transaction ended",
    async () => {
      const now = await lso();
      return zombie.every((r) => (now.get(r.partition) ?? 0n) > r.offset) ? true : undefined;
    },
    60_000,
  );
  await eventually('B processing', async () => (decided() >= decidedBeforeB + 200 ? true : undefined), 60_000);

  // Resume A: its pending commit (or the next one) uses the fenced producer epoch and must be refused.
  const failedBefore = a.lines('task failed').length;
  a.child.kill('SIGCONT');
  frozen = undefined;
  const refused = await eventually(
    'A notices it was fenced',
    async () => {
      const failures = a.lines('task failed').slice(failedBefore);
      const fenced = failures.filter((l) => zombiePartitions.has(l.partition as number));
      return fenced.length > 0 ? fenced : undefined;
    },
    60_000,
  );
  const errorText = JSON.stringify(refused.map((l) => l.err));
  t.log(`A after SIGCONT: ${errorText.slice(0, 400)}`);
  t.regex(errorText, /operation with an old epoch/, 'the refusal is the producer fence (INVALID_PRODUCER_EPOCH)');
  // A drops the fenced task (closed as fenced, rebuilt from the changelog if it gets the partition again); it
  // does not exit.
  await eventually(
    'A closed its fenced task',
    async () => {
      // fenced: the refusal was INVALID_PRODUCER_EPOCH; failed: another refusal of the fenced producer (e.g.
      // CONCURRENT_TRANSACTIONS while the coordinator still completes the abort B's fence started).
      const closed = async (why: string) =>
        (await a.metric('stream_task_closures_total', { stage: 'dedupe', why })) ?? 0;
      return (await closed('fenced')) + (await closed('failed')) >= 1 || undefined;
    },
    30_000,
  );
  await sleep(3000);
  t.is(a.child.exitCode, null, 'A keeps running');

  // Let the two processors share the work for a while, then stop producing and wait for the exact outcome.
  await sleep(6000);
  producing = false;
  await stream;
  const expected: Record<string, number> = {};
  for (const { optionId } of firstVote.values()) expected[optionId] = (expected[optionId] ?? 0) + 1;
  await eventually(
    'every vote decided and the tally complete',
    async () => (decided() >= allVotes.size && latestTally?.total === firstVote.size ? true : undefined),
    90_000,
  );

  // A's open transaction never reached a read_committed consumer.
  for (const r of zombie)
    t.false(committedAt.has(`${r.partition}@${r.offset}`), `zombie record ${r.partition}@${r.offset}`);
  // ... and each of those votes was decided exactly once by a live owner.
  for (const r of zombie) t.is(committed.get(r.voteId)?.length, 1, `vote ${r.voteId} of the zombie transaction`);

  t.is(committed.size, allVotes.size);
  let counted = 0;
  for (const [voteId, list] of committed) {
    t.is(list.length, 1, `vote ${voteId} has ${list.length} decisions`);
    const d = list[0] as VoteDecision;
    const first = firstVote.get(d.vote.voterId);
    if (d.outcome === 'COUNTED') {
      counted++;
      t.is(first?.voteId, voteId);
    } else {
      t.is(d.reason, 'DUPLICATE');
      t.is(d.countedVoteId, first?.voteId ?? null);
    }
  }
  t.is(counted, firstVote.size);
  t.deepEqual(latestTally?.totals, expected);
  t.log(
    `${allVotes.size} votes, ${firstVote.size} voters, ${zombie.length} decisions in the aborted zombie transaction`,
  );
  const stop = (p: Processor) => {
    p.child.kill('SIGTERM');
    return withTimeout(p.exited, 60_000, `${p.name} exits after SIGTERM`);
  };
  await Promise.all([stop(a), stop(b)]);
});
