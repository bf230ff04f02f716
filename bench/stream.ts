// Benchmark of the stream processors (run by hand: `node --import tsx bench/stream.ts [burstVotes] [pacedRate] [pacedSeconds]`,
// defaults 20000, 1000 votes/s, 8 s). On a fresh topic prefix of the local stack, in one run:
//   1. one processor process (stages BENCH_STREAM_STAGES, below; exactly-once) is started and waits, ready, for votes;
//   2. paced phase: votes at a steady rate below capacity -> append-to-tally latency p50/p99;
//   3. burst phase: N votes produced as fast as possible -> throughput: the stage's processing rate (from the
//      first burst vote it began to process, decidedAt, to the last decision committed) and end to end (from the
//      first burst vote produced to the last decision committed), plus the latency under that backlog;
//   4. backlog phase: the processor is stopped, N votes are queued, a second process restores the changelogs
//      (restore rate) and drains the backlog (the stage's processing rate when its input is never empty);
//   5. baseline: a plain read_committed consume + Avro decode of the same votes topic (first to last batch);
//   6. baseline of the drain: the bare KafkaJS exactly-once consume -> produce loop over the same votes (one
//      transactional producer per partition, one output record per input record, commits every 100 ms with the
//      offsets), its rate and CPU per message beside the stage's drain (CPU of the processor process, /proc);
//   7. restore, interleaved A/B/A/B: the dedupe tasks' changelog partitions restored into fresh DedupeProcessors
//      by the runtime's restore reader (all in parallel, as a process does; from the call to the last record
//      applied) vs a plain read_committed consume of the same changelog topics (from its group join to the last
//      batch: the join is not counted);
//   8. memory per remembered voter of the dedupe table (at 1M voters, and the most over 100k..1M).
// Stages (BENCH_STREAM_STAGES, default dedupe,analytics,tally: every stage that does work per vote): with the
// analytics stage, the drain's CPU window ends only once every backlog decision also has its analytics record, so
// the figure holds all of a vote's stream work; BENCH_STREAM_STAGES=dedupe,tally gives the vote path's alone (the
// figure of issue 14's table, when stage 1 still wrote the analytics records itself).
// Append-to-tally latency of a vote = receive time, by a read_committed consumer of `tallies`, of the first global
// TallyUpdate that includes it, minus the vote's record timestamp (set by this producer when it sends the vote).
// To know exactly which update includes which vote, each poll's voters are chosen so that all its votes land on one
// votes partition (the default partitioner on key pollId/voterId): its k-th vote is in the first update of the poll
// with total >= k. The receive time is at most one fetch wait (100 ms) after the commit, so it is an upper bound.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTopics,
  eventually,
  makeVote,
  repoRoot,
  type ServiceProcess,
  stack,
  startPipelineService,
  uniqueId,
} from '@votestream/devstack';
import { createKafka, createLogger } from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import { type Consumer, Partitioners, type Transaction } from 'kafkajs';
import { fingerprintOf, streamTopics, VoterTable } from '../stream/src/index.ts';
import { consumeChangelogs, type RestoreFigures, restoreDedupeTasks } from './restore-kit.ts';

const burstVotes = Number(process.argv[2] ?? 20_000);
const pacedRate = Number(process.argv[3] ?? 1000);
const pacedSeconds = Number(process.argv[4] ?? 8);
const partitions = 4;
const tallyPartitions = 2;
const waitMsMax = 300_000;
const id = uniqueId('bench');
const prefix = `b-${id}.`;
const logger = createLogger('bench', 'warn');
const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
const deleteTopics = await createTopics(prefix, { votePartitions: partitions, tallyPartitions });
const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
const encodeVote = serde.encoder('VoteCast');
const decodeVote = serde.decoder('VoteCast');
const decodeDecision = serde.decoder('VoteDecision');
const decodeTally = serde.decoder('TallyUpdate');
const decodeAnalytics = serde.decoder('VoteAnalytics');
const stages = (process.env.BENCH_STREAM_STAGES ?? 'dedupe,analytics,tally').split(',');
if (
  !(
    stages.includes('dedupe') &&
    stages.includes('tally') &&
    stages.every((x) => ['dedupe', 'analytics', 'tally'].includes(x))
  )
)
  throw new Error('BENCH_STREAM_STAGES must list dedupe and tally, and may list analytics');
const withAnalytics = stages.includes('analytics');
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
await producer.connect();
const children = new Set<ServiceProcess>();
const bareOut = `${prefix}bench-bare-out`;
const cleanup = async () => {
  for (const c of children) await c.kill9();
  await producer.disconnect().catch(() => {});
  await deleteTopics();
  const admin = kafka.admin();
  await admin.connect();
  const internal = streamTopics(prefix, env.STREAM_APPLICATION_ID);
  const extra = [bareOut, internal.dedupeChangelog, internal.partialTallyChangelog, internal.globalTallyChangelog];
  await admin.deleteTopics({ topics: extra }).catch(() => {});
  await admin.disconnect();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

// One poll per votes partition and phase; the voters of poll `<phase>-<p>` all hash to partition p.
const phases = ['paced', 'burst', 'backlog'] as const;
type Phase = (typeof phases)[number];
const pollIdOf = (phase: Phase, p: number) => `${phase}-${p}-${id}`;
const partitioner = Partitioners.DefaultPartitioner();
const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
  partitionId,
  leader: 1,
  replicas: [1],
  isr: [1],
  partitionErrorCode: 0,
}));
const voterSeq = new Map<string, number>();
const nextVoter = (pollId: string, p: number): string => {
  let j = voterSeq.get(pollId) ?? 0;
  for (; ; j++) {
    const voterId = `voter-${j}`;
    const key = `${pollId}/${voterId}`;
    if (partitioner({ topic: `${prefix}votes`, partitionMetadata, message: { key, value: null } }) === p) {
      voterSeq.set(pollId, j + 1);
      return voterId;
    }
  }
};
const now = Date.now();
await producer.send({
  topic: `${prefix}polls`,
  acks: -1,
  messages: phases.flatMap((phase) =>
    Array.from({ length: partitions }, (_, p) => {
      const pollId = pollIdOf(phase, p);
      return {
        key: pollId,
        value: serde.encoder('PollEvent')({
          eventId: randomUUID(),
          type: 'CREATED',
          occurredAt: now,
          poll: {
            pollId,
            title: 'bench',
            options: [
              { id: 'a', label: 'a' },
              { id: 'b', label: 'b' },
            ],
            opensAt: now - 60_000,
            closesAt: null,
            closedAt: null,
          },
        }),
      };
    }),
  ),
});

// Per poll: record timestamps of its votes in produce order (= offset order: one producer, one partition, idempotent,
// one request in flight) and the tallies received (total, receive time).
const appended = new Map<string, number[]>();
const talliesSeen = new Map<string, Array<{ total: number; at: number }>>();
const decided: Record<Phase, { n: number; firstDecidedAt: number; lastAt: number }> = {
  paced: { n: 0, firstDecidedAt: Number.MAX_SAFE_INTEGER, lastAt: 0 },
  burst: { n: 0, firstDecidedAt: Number.MAX_SAFE_INTEGER, lastAt: 0 },
  backlog: { n: 0, firstDecidedAt: Number.MAX_SAFE_INTEGER, lastAt: 0 },
};
const phaseOf = (pollId: string): Phase => pollId.slice(0, pollId.indexOf('-')) as Phase;
/** Analytics records committed per phase, and when the last was received. */
const analysed: Record<Phase, { n: number; lastAt: number }> = {
  paced: { n: 0, lastAt: 0 },
  burst: { n: 0, lastAt: 0 },
  backlog: { n: 0, lastAt: 0 },
};

const consumers: Consumer[] = [];
async function reader(topicName: string, onBatch: (values: Buffer[], at: number) => Promise<void>): Promise<void> {
  const c = kafka.consumer({ groupId: `${id}-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  consumers.push(c);
  const joined = new Promise<void>((r) => c.on(c.events.GROUP_JOIN, () => r()));
  await c.connect();
  await c.subscribe({ topics: [topicName], fromBeginning: true });
  await c.run({
    eachBatch: async ({ batch }) => {
      const at = Date.now();
      await onBatch(
        batch.messages.flatMap((m) => (m.value ? [m.value] : [])),
        at,
      );
    },
  });
  await joined;
}
// The verifying readers join their groups before anything is produced, so nothing is seen late because of a join.
await Promise.all([
  reader(`${prefix}vote-decisions`, async (values, at) => {
    for (const v of values) {
      const d = await decodeDecision(v);
      const s = decided[phaseOf(d.vote.pollId)];
      s.n++;
      s.firstDecidedAt = Math.min(s.firstDecidedAt, d.decidedAt);
      s.lastAt = at;
    }
  }),
  ...(withAnalytics
    ? [
        reader(`${prefix}analytics-votes`, async (values, at) => {
          for (const v of values) {
            const s = analysed[phaseOf((await decodeAnalytics(v)).pollId)];
            s.n++;
            s.lastAt = at;
          }
        }),
      ]
    : []),
  reader(`${prefix}tallies`, async (values, at) => {
    for (const v of values) {
      const u = await decodeTally(v);
      const list = talliesSeen.get(u.pollId) ?? [];
      list.push({ total: u.total, at });
      talliesSeen.set(u.pollId, list);
    }
  }),
]);

const env = {
  TOPIC_PREFIX: prefix,
  SCHEMA_SUBJECT_PREFIX: `${id}.`,
  STREAM_APPLICATION_ID: `${id}-app`,
  STREAM_STAGES: stages.join(','),
  LOG_LEVEL: 'info',
};
const logDir = join(repoRoot, `test-results/bench-stream-${id}`);
interface Started {
  process: ServiceProcess;
  metricsUrl: string;
  /** The tasks the process owns, from its /readyz: the restore figures (read once it is ready). */
  tasks: () => Promise<Array<{ stage: string; partition: number; restoredRecords: number; restoreMs: number }>>;
}
let starts = 0;
/** A processor process, ready once every dedupe and tally task runs (the stream_tasks_active gauge). */
const start = async (): Promise<Started> => {
  // BENCH_CPU_PROF_DIR=<dir>: each processor process writes a V8 CPU profile there when it exits (SIGTERM).
  const profile = process.env.BENCH_CPU_PROF_DIR
    ? [`--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`, '--cpu-prof']
    : [];
  const { process: child, metricsUrl } = await startPipelineService('stream', {
    name: `stream-${++starts}`,
    env,
    logDir,
    execArgv: profile,
  });
  children.add(child);
  await eventually(
    'every dedupe and tally task running',
    async () => {
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      const running = (stage: string) =>
        Number(new RegExp(`^stream_tasks_active\\{stage="${stage}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      return running('dedupe') >= partitions &&
        running('tally') >= tallyPartitions &&
        (!withAnalytics || running('analytics') >= partitions)
        ? true
        : undefined;
    },
    waitMsMax,
  );
  return {
    process: child,
    metricsUrl,
    tasks: async () =>
      (
        (await (await fetch(`${metricsUrl}/readyz`)).json()) as {
          tasks: Array<{ stage: string; partition: number; restoredRecords: number; restoreMs: number }>;
        }
      ).tasks,
  };
};
const stop = async (s: Started) => {
  await s.process.stop(waitMsMax);
  children.delete(s.process);
};
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!check()) {
    if (Date.now() > deadline) {
      await cleanup();
      throw new Error(`bench: timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const p1 = await start();
/** Sends `count` votes in batches; each batch's record timestamp is taken right before it is sent. */
const produce = async (phase: Phase, count: number, batchSize: number): Promise<void> => {
  for (let i = 0; i < count; i += batchSize) {
    const ts = Date.now();
    const messages = [];
    for (let j = i; j < Math.min(count, i + batchSize); j++) {
      const p = j % partitions;
      const pollId = pollIdOf(phase, p);
      const v = makeVote(pollId, nextVoter(pollId, p), j % 3 ? 'a' : 'b', ts);
      messages.push({ key: `${pollId}/${v.voterId}`, value: encodeVote(v), timestamp: String(ts) });
      const list = appended.get(pollId) ?? [];
      list.push(ts);
      appended.set(pollId, list);
    }
    await producer.send({ topic: `${prefix}votes`, acks: -1, messages });
  }
};

const complete = (phase: Phase) => () => {
  for (let p = 0; p < partitions; p++) {
    const pollId = pollIdOf(phase, p);
    const want = appended.get(pollId)?.length ?? 0;
    const seen = talliesSeen.get(pollId) ?? [];
    if (want > 0 && (seen[seen.length - 1]?.total ?? 0) < want) return false;
  }
  return true;
};

function latencies(phase: Phase): { p50: number; p99: number; max: number; n: number } {
  const all: number[] = [];
  for (let p = 0; p < partitions; p++) {
    const pollId = pollIdOf(phase, p);
    const ts = appended.get(pollId) ?? [];
    const seen = talliesSeen.get(pollId) ?? [];
    let u = 0;
    for (let k = 0; k < ts.length; k++) {
      while (u < seen.length && (seen[u]?.total ?? 0) < k + 1) u++;
      const update = seen[u];
      if (!update) throw new Error(`vote ${k + 1} of ${pollId} is in no tally`);
      all.push(update.at - (ts[k] as number));
    }
  }
  all.sort((x, y) => x - y);
  const q = (f: number) => all[Math.min(all.length - 1, Math.floor(f * all.length))] ?? Number.NaN;
  return { p50: q(0.5), p99: q(0.99), max: all[all.length - 1] ?? Number.NaN, n: all.length };
}

// Paced phase: batches of pacedRate/20 votes every 50 ms.
const pacedVotes = Math.round(pacedRate * pacedSeconds);
const pacedBatch = Math.max(1, Math.round(pacedRate / 20));
const pacedStart = Date.now();
for (let sent = 0, i = 0; sent < pacedVotes; i++) {
  const n = Math.min(pacedBatch, pacedVotes - sent);
  await produce('paced', n, n);
  sent += n;
  const wait = pacedStart + (i + 1) * 50 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
const pacedActualRate = (pacedVotes * 1000) / (Date.now() - pacedStart);
await until('paced phase tallied', () => complete('paced')() && decided.paced.n >= pacedVotes);

// Burst phase.
const burstStart = Date.now();
await produce('burst', burstVotes, 1000);
const producedMs = Date.now() - burstStart;
await until('burst phase decided', () => decided.burst.n >= burstVotes);
await until('burst phase tallied', complete('burst'));
const stageMs = decided.burst.lastAt - decided.burst.firstDecidedAt;
const endToEndMs = decided.burst.lastAt - burstStart;

// Backlog phase: stop the processor, queue N votes, start a second process: it restores the changelogs (restore
// rate) and then drains the backlog (the stage's processing rate with its input never empty).
await stop(p1);
await produce('backlog', burstVotes, 1000);
const p2 = await start();
/** CPU seconds (user + system) of a child process so far, from /proc (Linux). */
const cpuOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
};
const drainCpu0 = cpuOf(p2.process.pid);
const drainDecided0 = decided.backlog.n;
const restored = (await p2.tasks()).filter((x) => x.stage === 'dedupe');
const restoredRecords = restored.reduce((n, r) => n + r.restoredRecords, 0);
const restoreMs = restored.reduce((n, r) => Math.max(n, r.restoreMs), 0);
await until('backlog decided', () => decided.backlog.n >= burstVotes);
await until('backlog tallied', complete('backlog'));
if (withAnalytics) await until('backlog analysed', () => analysed.backlog.n >= burstVotes);
const drainMs = decided.backlog.lastAt - decided.backlog.firstDecidedAt;
// The stage's CPU per vote: from the moment every task ran (restore done) to the last backlog decision committed
// (with the analytics stage: and its last analytics record).
const drainCpuUsPerVote = ((cpuOf(p2.process.pid) - drainCpu0) * 1e6) / Math.max(1, decided.backlog.n - drainDecided0);
const drainCpuVotes = decided.backlog.n - drainDecided0;
await stop(p2);

// Baseline: a plain read_committed consume + decode of the same votes topic (now holding both phases).
const totalVotes = pacedVotes + 2 * burstVotes;
const baselineMs = await (async () => {
  const c = kafka.consumer({ groupId: `${id}-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topics: [`${prefix}votes`], fromBeginning: true });
  let n = 0;
  let first = 0;
  let last = 0;
  await new Promise<void>((resolve) => {
    void c.run({
      eachBatch: async ({ batch }) => {
        if (!first) first = Date.now();
        for (const m of batch.messages) if (m.value) await decodeVote(m.value);
        n += batch.messages.length;
        if (n >= totalVotes) {
          last = Date.now();
          resolve();
        }
      },
    });
  });
  await c.disconnect();
  return last - first;
})();

for (const c of consumers) await c.disconnect();

// The bare KafkaJS exactly-once loop over the same votes, in this process (its readers are gone by now, so the
// process's CPU is the loop's): one transactional producer per votes partition, each input record produced once to
// `bench-bare-out` (same partition) in the partition's open transaction, which commits with the offsets once it is
// 100 ms old (and at the end). Rate and CPU from the first batch to the last commit.
const bare = await (async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: bareOut, numPartitions: partitions, replicationFactor: 1 }],
  });
  await admin.disconnect();
  const groupId = `${id}-bare`;
  const txs = await Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const pr = kafka.producer({
        transactionalId: `${id}-bare-${p}`,
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
      });
      await pr.connect();
      return { producer: pr, tx: undefined as Transaction | undefined, openedAt: 0, next: '0' };
    }),
  );
  const commit = async (p: number) => {
    const s = txs[p] as (typeof txs)[number];
    if (!s.tx) return;
    await s.tx.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: `${prefix}votes`, partitions: [{ partition: p, offset: s.next }] }],
    });
    await s.tx.commit();
    s.tx = undefined;
  };
  const c = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topics: [`${prefix}votes`], fromBeginning: true });
  let n = 0;
  let first = 0;
  let cpu0 = process.cpuUsage();
  const all = new Promise<void>((resolve) => {
    void c.run({
      autoCommit: false,
      partitionsConsumedConcurrently: partitions,
      eachBatch: async ({ batch }) => {
        if (!first) {
          first = performance.now();
          cpu0 = process.cpuUsage();
        }
        const s = txs[batch.partition] as (typeof txs)[number];
        if (!s.tx) {
          s.tx = await s.producer.transaction();
          s.openedAt = performance.now();
        }
        await s.tx.send({
          topic: bareOut,
          messages: batch.messages.map((m) => ({ key: m.key, value: m.value, partition: batch.partition })),
        });
        s.next = String(BigInt(batch.lastOffset()) + 1n);
        if (performance.now() - s.openedAt >= 100) await commit(batch.partition);
        n += batch.messages.length;
        if (n >= totalVotes) resolve();
      },
    });
  });
  await all;
  await c.stop();
  for (let p = 0; p < partitions; p++) await commit(p);
  const ms = performance.now() - first;
  const cpu = process.cpuUsage(cpu0);
  await c.disconnect();
  for (const s of txs) await s.producer.disconnect();
  return { n, ms: Math.round(ms), cpuUsPerMsg: (cpu.user + cpu.system) / n };
})();

// Restore, interleaved A/B/A/B: the restore reader into fresh DedupeProcessors (every dedupe task in parallel, both
// its changelogs, as a process restores) vs a plain read_committed consume of the same changelog topics.
const internal = streamTopics(prefix, env.STREAM_APPLICATION_ID);
const restoreRun = async (): Promise<RestoreFigures> => {
  const admin = kafka.admin();
  await admin.connect();
  const figures = await restoreDedupeTasks({ kafka, admin, serde, logger, prefix, internal, partitions });
  await admin.disconnect();
  return figures;
};
const consumeRun = (records: number) =>
  consumeChangelogs({
    kafka,
    groupPrefix: id,
    topics: [internal.dedupeChangelog, internal.partialTallyChangelog],
    records,
  });
const restoreRounds: Array<{ restore: RestoreFigures; consume: RestoreFigures }> = [];
for (let round = 0; round < 2; round++) {
  const restore = await restoreRun();
  restoreRounds.push({ restore, consume: await consumeRun(restore.records) });
}

const table = new VoterTable();
const fp = { hi: 0, lo: 0 };
let worstBytes = 0;
for (let i = 0; i < 1_000_000; i++) {
  table.insert(fingerprintOf(`voter-${i}`, fp), randomUUID());
  if (table.size >= 100_000) worstBytes = Math.max(worstBytes, table.bytes / table.size);
}

const rate = (n: number, ms: number) => Math.round((n * 1000) / Math.max(1, ms));
const paced = latencies('paced');
const burst = latencies('burst');
console.log(`one processor process, stages ${stages.join(' + ')}, exactly-once; ${partitions} votes partitions`);
console.log(
  `paced ${pacedVotes} votes at ${Math.round(pacedActualRate)} votes/s: append -> committed tally p50 ${paced.p50} ms, p99 ${paced.p99} ms, max ${paced.max} ms`,
);
console.log(
  `burst ${burstVotes} votes (produced in ${producedMs} ms = ${rate(burstVotes, producedMs)} votes/s by one producer):`,
);
console.log(
  `  stage processing rate (first vote taken -> last decision committed): ${rate(burstVotes, stageMs)} votes/s (${stageMs} ms)`,
);
console.log(
  `  end to end (first vote produced -> last decision committed): ${rate(burstVotes, endToEndMs)} votes/s (${endToEndMs} ms)`,
);
console.log(
  `  append -> committed tally under the backlog: p50 ${burst.p50} ms, p99 ${burst.p99} ms, max ${burst.max} ms`,
);
console.log(
  `backlog ${burstVotes} votes queued while no processor ran: stage processing rate (first vote taken -> last decision committed) ${rate(burstVotes, drainMs)} votes/s (${drainMs} ms)`,
);
console.log(
  `  stage CPU: ${drainCpuUsPerVote.toFixed(1)} CPU-us/vote (processor process, stages ${stages.join(' + ')}, over the ${drainCpuVotes} votes decided after every task ran)`,
);
console.log(
  `baseline bare KafkaJS exactly-once consume -> produce of the same ${bare.n} votes (a transactional producer per partition, 100 ms commits): ${rate(bare.n, bare.ms)} msgs/s, ${bare.cpuUsPerMsg.toFixed(1)} CPU-us/msg => stage / bare = ${(drainCpuUsPerVote / bare.cpuUsPerMsg).toFixed(2)}x CPU per vote`,
);
console.log(
  `baseline read_committed consume + decode of the same ${totalVotes} votes: ${rate(totalVotes, baselineMs)} votes/s (${baselineMs} ms, first to last batch)`,
);
console.log(
  `restore in the stage: ${restoredRecords} changelog records, slowest task ${restoreMs} ms (fence + restore; tasks restore in parallel) => ${rate(restoredRecords, restoreMs)} records/s`,
);
for (const [i, { restore, consume }] of restoreRounds.entries()) {
  console.log(
    `restore round ${i + 1}: restore reader into ${partitions} DedupeProcessors ${restore.records} records in ${restore.ms} ms => ${rate(restore.records, restore.ms)} records/s; baseline read_committed consume of the same changelogs ${consume.records} records ${consume.ms} ms (group joined to last batch) => ${rate(consume.records, consume.ms)} records/s; ratio ${(rate(restore.records, restore.ms) / Math.max(1, rate(consume.records, consume.ms))).toFixed(2)}`,
  );
}
console.log(
  `dedupe table: ${(table.bytes / table.size).toFixed(1)} bytes per remembered voter at 1M voters (most from 100k to 1M: ${worstBytes.toFixed(1)})`,
);
await cleanup();
process.exit(0);
