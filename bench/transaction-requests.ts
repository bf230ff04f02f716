// Where a stream transaction's time goes: the Kafka requests one commit of the stream runtime's TaskProducer makes
// (KafkaJS 2.2.4's REQUEST instrumentation events, @platformatic/kafka's `plt:kafka:connections:api` diagnostics
// channel: api, duration; and the process's CPU time per commit), for a stage-1-like commit of n votes (decisions
// on the task's partition, one partial, two changelog records, the input offset), the same with one analytics
// record per vote spread by key over the analytics topic (stage 1 as it was until the analytics stage took them),
// an analytics-stage-like commit (the n analytics records, a position record, the offset) and a stage-2-like
// commit (one tally, one changelog record, the offset).
// Baseline, same run: the same records in one idempotent, non-transactional send (one produce request per broker).
// Also: how soon a read_committed reader with a long fetch wait receives what a commit made visible.
//
//   node --import tsx bench/transaction-requests.ts [votesPerCommit=6] [commits=30] [clients=kafkajs]
//
// clients: the seam's transactional producer clients to compare (libs/runtime/src/kafka-transactions.ts), e.g.
// kafkajs,platformatic (the prototype needs Node >= 22.22); their commits are interleaved, commit by commit.
//
// On the local stack (one broker); by hand, not in CI.
import { randomUUID } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import { createTopics, stack, stackKafka, withAdmin } from '@votestream/devstack';
import {
  createLogger,
  type KafkaClientName,
  kafkaClients,
  loadTransactionalProducers,
  waitForLeaders,
} from '@votestream/runtime';
import { type Kafka, Partitioners, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { RecordCollector } from '../stream/src/runtime/collector.ts';
import { StreamMetrics } from '../stream/src/runtime/metrics.ts';
import { PartitionCounts } from '../stream/src/runtime/partitions.ts';
import { TaskProducer } from '../stream/src/runtime/task-producer.ts';

const votesPerCommit = Number(process.argv[2] ?? 6);
const commits = Number(process.argv[3] ?? 30);
const clients = (process.argv[4] ?? 'kafkajs').split(',') as KafkaClientName[];
if (
  !(votesPerCommit >= 1 && votesPerCommit <= 5000 && commits >= 1 && commits <= 1000) ||
  !clients.every((c) => (kafkaClients as readonly string[]).includes(c))
)
  throw new Error(
    `usage: [votesPerCommit 1..5000] [commits 1..1000] [clients: comma list of ${kafkaClients.join(', ')}]`,
  );

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
// KafkaJS's own waitForLeaders throws UNKNOWN_TOPIC_OR_PARTITION on a busy broker: the runtime's bounded wait.
await withAdmin(async (admin) => {
  await admin.createTopics({
    waitForLeaders: false,
    topics: [changelogA, changelogB].map((topic) => ({ topic, numPartitions: 8, replicationFactor: 1 })),
  });
  await waitForLeaders(admin, [changelogA, changelogB]);
});
const kafka = stackKafka('txreq');
const admin = kafka.admin();
await admin.connect();
const groupId = `${prefix}group`;
const logger = createLogger('txreq', 'warn');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((p / 100) * (xs.length - 1))] ?? 0;

type ByApi = Map<string, { n: number; ms: number }>;
const count = (byApi: ByApi, api: string, ms: number) => {
  const cur = byApi.get(api) ?? { n: 0, ms: 0 };
  byApi.set(api, { n: cur.n + 1, ms: cur.ms + ms });
};
// @platformatic/kafka's requests: every connection's `start` (request written) to `asyncStart` (response parsed);
// counted only while a platformatic commit is traced (commits run one at a time).
let pltRequests: ByApi | undefined;
const pltStarted = new WeakMap<object, number>();
subscribe('tracing:plt:kafka:connections:api:start', (d) => pltStarted.set(d as object, performance.now()));
subscribe('tracing:plt:kafka:connections:api:asyncStart', (d) => {
  const at = pltStarted.get(d as object);
  const { apiKey } = d as { apiKey: number };
  if (pltRequests && at !== undefined)
    count(pltRequests, pltApiNames.get(apiKey) ?? String(apiKey), performance.now() - at);
});
const pltApiNames = new Map<number, string>();
if (clients.includes('platformatic')) {
  const { protocolAPIsById } = await import('@platformatic/kafka');
  for (const [id, name] of Object.entries(protocolAPIsById)) pltApiNames.set(Number(id), name);
}

/** Requests of `producer` (KafkaJS) or of platformatic while `fn` runs: count and summed duration per API, wall and CPU time. */
async function traced(producer: Producer | 'platformatic', fn: () => Promise<void>) {
  const byApi: ByApi = new Map();
  const off =
    producer === 'platformatic'
      ? (() => {
          pltRequests = byApi;
          return () => {
            pltRequests = undefined;
          };
        })()
      : producer.on(producer.events.REQUEST, ({ payload }) => count(byApi, payload.apiName, payload.duration));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await fn();
  const wall = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  off();
  return { byApi, wall, cpuMs: (cpu.user + cpu.system) / 1000 };
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
  const cpuMs = runs.reduce((a, r) => a + r.cpuMs, 0) / runs.length;
  console.log(
    `${name}: wall p50 ${pct(walls, 50).toFixed(1)} ms p99 ${pct(walls, 99).toFixed(1)} ms; ${requests.toFixed(1)} requests per commit; process CPU ${cpuMs.toFixed(2)} ms per commit`,
  );
  for (const [api, v] of [...apis.entries()].sort((a, b) => b[1].ms - a[1].ms))
    console.log(
      `    ${api.padEnd(22)} ${(v.n / runs.length).toFixed(1).padStart(5)} per commit, ${(v.ms / v.n).toFixed(1)} ms each`,
    );
}

const metrics = new StreamMetrics(new Registry());
// The KafkaJS producers the runtime creates (through this tap), to listen to their REQUEST events.
const kafkajsMade: Producer[] = [];
const kafkaTap = Object.create(kafka) as Kafka;
kafkaTap.producer = (config) => {
  const p = kafka.producer(config);
  kafkajsMade.push(p);
  return p;
};
const taskProducer = async (client: KafkaClientName, stage: string, input: string) => {
  const producers =
    client === 'kafkajs'
      ? undefined // the runtime's default path: TaskProducer's own KafkaJS producer
      : await loadTransactionalProducers(client, kafka, { clientId: `txreq-${client}`, brokers: stack.kafkaBrokers });
  const producer = new TaskProducer({
    kafka: kafkaTap,
    producers,
    stage,
    inputTopic: input,
    partition: 0,
    groupId,
    transactionalId: `${prefix}${client}-${stage}-0`,
    transactionTimeoutMs: 60_000,
    partitionCounts: new PartitionCounts(admin),
    metrics,
    logger,
  });
  const traceable: Producer | 'platformatic' = client === 'kafkajs' ? (kafkajsMade.at(-1) as Producer) : client;
  await producer.fence();
  return { producer, traceable };
};
const setups = [];
for (const client of clients) {
  const stage1 = await taskProducer(client, 'dedupe', t.votes);
  const stage2 = await taskProducer(client, 'tally', t.partials);
  const analytics = await taskProducer(client, 'analytics', t.decisions);
  setups.push({
    client,
    stage1,
    stage2,
    analytics,
    r1: [] as Run[],
    r1WithAnalytics: [] as Run[],
    rA: [] as Run[],
    r2: [] as Run[],
  });
}
const plain = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
await plain.connect();

const analyticsRecords = (out = new RecordCollector()) => {
  for (let i = 0; i < votesPerCommit; i++) out.send(t.analytics, `p/${randomUUID()}`, Buffer.alloc(80));
  return out;
};
const stage1Records = (withAnalytics = false) => {
  const out = withAnalytics ? analyticsRecords() : new RecordCollector();
  for (let i = 0; i < votesPerCommit; i++) out.send(t.decisions, `p/${randomUUID()}`, Buffer.alloc(120), 0);
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

type Run = Awaited<ReturnType<typeof traced>>;
const rb: Run[] = [];
let offset = 0n;
for (let i = 0; i < commits; i++) {
  // Interleaved, so the machine's load hits every client and the baseline alike.
  offset += BigInt(votesPerCommit);
  for (const { client, stage1, stage2, analytics, r1, r1WithAnalytics, rA, r2 } of setups) {
    r1.push(await traced(stage1.traceable, () => stage1.producer.commit(stage1Records(), offset)));
    r1WithAnalytics.push(await traced(stage1.traceable, () => stage1.producer.commit(stage1Records(true), offset)));
    const position = analyticsRecords();
    position.send(changelogB, 'position', Buffer.alloc(8), 0);
    rA.push(await traced(analytics.traceable, () => analytics.producer.commit(position, offset)));
    const tallyKey = `${client}-p${i}`;
    r2.push(await traced(stage2.traceable, () => stage2.producer.commit(stage2Records(tallyKey), offset)));
    if (committedAt.has(tallyKey)) visibleAfter.push(0);
    else committedAt.set(tallyKey, performance.now());
  }
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
console.log(
  `${commits} commits each, ${votesPerCommit} votes per stage-1 commit, one broker, Node ${process.versions.node}`,
);
for (const { client, r1, r1WithAnalytics, rA, r2 } of setups) {
  report(`[${client}] stage-1-like transaction (TaskProducer.commit)`, r1);
  report(`[${client}] the same with the analytics records in it (stage 1 before the analytics stage)`, r1WithAnalytics);
  report(`[${client}] analytics-stage-like transaction (TaskProducer.commit)`, rA);
  report(`[${client}] stage-2-like transaction (TaskProducer.commit)`, r2);
}
report('baseline: the stage-1 records in one idempotent non-transactional send', rb);

await new Promise((r) => setTimeout(r, 2 * fetchWaitMs));
console.log(
  `a read_committed reader with a ${fetchWaitMs} ms fetch wait: commit() resolved -> record received p50 ${pct(visibleAfter, 50).toFixed(1)} ms, max ${Math.max(...visibleAfter).toFixed(1)} ms (n=${visibleAfter.length} of ${commits * setups.length})`,
);
await reader.disconnect();
for (const { stage1, stage2, analytics } of setups) {
  await stage1.producer.disconnect();
  await stage2.producer.disconnect();
  await analytics.producer.disconnect();
}
await plain.disconnect();
await admin.disconnect();
await withAdmin((a) => a.deleteTopics({ topics: [changelogA, changelogB] })).catch(() => undefined);
await dropTopics();
