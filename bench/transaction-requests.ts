// Where a stream transaction's time goes: the Kafka requests one commit of the stream runtime's TaskProducer makes
// (KafkaJS 2.2.4's REQUEST instrumentation events: api, duration), for a stage-1-like commit of n votes (decisions
// on the task's partition, one analytics record per vote spread by key over the analytics topic, one partial, two
// changelog records, the input offset) and a stage-2-like commit (one tally, one changelog record, the offset).
// Baseline, same run: the same records in one idempotent, non-transactional send (one produce request per broker).
// Also: how soon a read_committed reader with a long fetch wait receives what a commit made visible.
//
//   node --import tsx bench/transaction-requests.ts [votesPerCommit=6] [commits=30]
//
// On the local stack (one broker); by hand, not in CI.
import { randomUUID } from 'node:crypto';
import { createTopics, stackKafka, withAdmin } from '@votestream/devstack';
import { createLogger } from '@votestream/runtime';
import { Partitioners, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { RecordCollector } from '../stream/src/runtime/collector.ts';
import { StreamMetrics } from '../stream/src/runtime/metrics.ts';
import { PartitionCounts } from '../stream/src/runtime/partitions.ts';
import { TaskProducer } from '../stream/src/runtime/task-producer.ts';

const votesPerCommit = Number(process.argv[2] ?? 6);
const commits = Number(process.argv[3] ?? 30);
if (!(votesPerCommit >= 1 && votesPerCommit <= 5000 && commits >= 1 && commits <= 1000))
  throw new Error('usage: [votesPerCommit 1..5000] [commits 1..1000]');

const prefix = `txreq${Date.now().toString(36)}.`;
const dropTopics = await createTopics(prefix); // votes, vote-decisions, analytics-votes: 8 partitions; partials 4
const t = {
  votes: `${prefix}votes`,
  decisions: `${prefix}vote-decisions`,
  analytics: `${prefix}analytics-votes`,
  partials: `${prefix}tally-partials`,
  tallies: `${prefix}tallies`,
};
const changelogA = `${prefix}changelog-a`;
const changelogB = `${prefix}changelog-b`;
await withAdmin((admin) =>
  admin.createTopics({
    waitForLeaders: true,
    topics: [changelogA, changelogB].map((topic) => ({ topic, numPartitions: 8, replicationFactor: 1 })),
  }),
);
const kafka = stackKafka('txreq');
const admin = kafka.admin();
await admin.connect();
const groupId = `${prefix}group`;
const logger = createLogger('txreq', 'warn');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((p / 100) * (xs.length - 1))] ?? 0;

/** Requests of `producer` while `fn` runs: count and summed duration per API, and the wall time. */
async function traced(producer: Producer, fn: () => Promise<void>) {
  const byApi = new Map<string, { n: number; ms: number }>();
  const off = producer.on(producer.events.REQUEST, ({ payload }) => {
    const cur = byApi.get(payload.apiName) ?? { n: 0, ms: 0 };
    byApi.set(payload.apiName, { n: cur.n + 1, ms: cur.ms + payload.duration });
  });
  const started = performance.now();
  await fn();
  const wall = performance.now() - started;
  off();
  return { byApi, wall };
}

function report(name: string, runs: Awaited<ReturnType<typeof traced>>[]) {
  const walls = runs.map((r) => r.wall);
  const apis = new Map<string, { n: number; ms: number }>();
  for (const r of runs)
    for (const [api, v] of r.byApi) {
      const cur = apis.get(api) ?? { n: 0, ms: 0 };
      apis.set(api, { n: cur.n + v.n, ms: cur.ms + v.ms });
    }
  const requests = [...apis.values()].reduce((a, v) => a + v.n, 0) / runs.length;
  console.log(
    `${name}: wall p50 ${pct(walls, 50).toFixed(1)} ms p99 ${pct(walls, 99).toFixed(1)} ms; ${requests.toFixed(1)} requests per commit`,
  );
  for (const [api, v] of [...apis.entries()].sort((a, b) => b[1].ms - a[1].ms))
    console.log(
      `    ${api.padEnd(22)} ${(v.n / runs.length).toFixed(1).padStart(5)} per commit, ${(v.ms / v.n).toFixed(1)} ms each`,
    );
}

const metrics = new StreamMetrics(new Registry());
const taskProducer = (stage: string, input: string) =>
  new TaskProducer({
    kafka,
    stage,
    inputTopic: input,
    partition: 0,
    groupId,
    transactionalId: `${prefix}${stage}-0`,
    transactionTimeoutMs: 60_000,
    partitionCounts: new PartitionCounts(admin),
    metrics,
    logger,
  });
const stage1 = taskProducer('dedupe', t.votes);
const stage2 = taskProducer('tally', t.partials);
await stage1.fence();
await stage2.fence();
// The TaskProducer's KafkaJS producer (private): only to listen to its REQUEST events.
const inner = (p: TaskProducer) => (p as unknown as { producer: Producer }).producer;
const plain = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
await plain.connect();

const stage1Records = () => {
  const out = new RecordCollector();
  for (let i = 0; i < votesPerCommit; i++) {
    out.send(t.decisions, `p/${randomUUID()}`, Buffer.alloc(120), 0);
    out.send(t.analytics, `p/${randomUUID()}`, Buffer.alloc(80));
  }
  out.send(t.partials, 'p', Buffer.alloc(200));
  out.send(changelogA, 'k', Buffer.alloc(40), 0);
  out.send(changelogB, 'k', Buffer.alloc(60), 0);
  return out;
};
const stage2Records = (key: string) => {
  const out = new RecordCollector();
  out.send(t.tallies, key, Buffer.alloc(200));
  out.send(changelogA, 'p', Buffer.alloc(100), 0);
  return out;
};

// Does a long fetch wait delay records a commit makes visible? A read_committed reader of the stage-2-like output
// with a 500 ms fetch wait (10x the stream's default): from commit() resolving to the record's receipt.
const fetchWaitMs = 500;
const reader = kafka.consumer({ groupId: `${prefix}reader`, readUncommitted: false, maxWaitTimeInMs: fetchWaitMs });
const committedAt = new Map<string, number>();
const visibleAfter: number[] = [];
let readerJoined = false;
reader.on(reader.events.GROUP_JOIN, () => {
  readerJoined = true;
});
await reader.connect();
await reader.subscribe({ topic: t.tallies, fromBeginning: true });
await reader.run({
  eachMessage: async ({ message }) => {
    const at = performance.now();
    const key = message.key?.toString() ?? '';
    const committed = committedAt.get(key);
    if (committed !== undefined) visibleAfter.push(at - committed);
    else committedAt.set(key, at); // received before commit() resolved here: counted as 0 below
  },
});
while (!readerJoined) await new Promise((r) => setTimeout(r, 50));

const r1: Awaited<ReturnType<typeof traced>>[] = [];
const r2: Awaited<ReturnType<typeof traced>>[] = [];
const rb: Awaited<ReturnType<typeof traced>>[] = [];
let offset = 0n;
for (let i = 0; i < commits; i++) {
  // Interleaved, so the machine's load hits all three alike.
  offset += BigInt(votesPerCommit);
  r1.push(await traced(inner(stage1), () => stage1.commit(stage1Records(), offset)));
  const tallyKey = `p${i}`;
  r2.push(await traced(inner(stage2), () => stage2.commit(stage2Records(tallyKey), offset)));
  if (committedAt.has(tallyKey)) visibleAfter.push(0);
  else committedAt.set(tallyKey, performance.now());
  const records = stage1Records();
  const counts = await new PartitionCounts(admin).of(records.topics());
  const batches = records.partitionBatches(counts, 1000).flat();
  rb.push(
    await traced(plain, async () => {
      await plain.sendBatch({
        acks: -1,
        topicMessages: batches.map((b) => ({ topic: b.topic, messages: b.messages })),
      });
    }),
  );
}
console.log(`${commits} commits each, ${votesPerCommit} votes per stage-1 commit, one broker`);
report('stage-1-like transaction (TaskProducer.commit)', r1);
report('stage-2-like transaction (TaskProducer.commit)', r2);
report('baseline: the stage-1 records in one idempotent non-transactional send', rb);

await new Promise((r) => setTimeout(r, 2 * fetchWaitMs));
console.log(
  `a read_committed reader with a ${fetchWaitMs} ms fetch wait: commit() resolved -> record received p50 ${pct(visibleAfter, 50).toFixed(1)} ms, max ${Math.max(...visibleAfter).toFixed(1)} ms (n=${visibleAfter.length} of ${commits})`,
);
await reader.disconnect();
await stage1.disconnect();
await stage2.disconnect();
await plain.disconnect();
await admin.disconnect();
await withAdmin((a) => a.deleteTopics({ topics: [changelogA, changelogB] })).catch(() => undefined);
await dropTopics();
