// Benchmark of the dedupe stage (run by hand: `node --import tsx bench/stream.ts [votes]`, default 20000).
// Produces N votes (unique voters, one poll) to a fresh topic prefix on the local stack, then measures in the same run:
//   baseline: a plain read_committed consume of the votes topic (decode only);
//   stream:   one processor process (dedupe stage, exactly-once) until every vote has a committed decision;
//   memory per remembered voter of the dedupe table; restore rate (a second process restores the changelog).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger } from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import { fingerprintOf, VoterTable } from '../stream/src/index.ts';
import { repoRoot, stack, uniqueId } from '../tests/support/stack.ts';

const votes = Number(process.argv[2] ?? 20_000);
const id = uniqueId('bench');
const prefix = `b-${id}.`;
const logger = createLogger('bench', 'warn');
const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
const admin = kafka.admin();
await admin.connect();
const t = (name: string, n: number, compact = false) => ({
  topic: `${prefix}${name}`,
  numPartitions: n,
  replicationFactor: 1,
  configEntries: compact ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
});
await admin.createTopics({
  waitForLeaders: true,
  topics: [t('votes', 4), t('polls', 1, true), t('vote-decisions', 4), t('tally-partials', 2), t('tallies', 1)],
});
const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
const encodeVote = serde.encoder('VoteCast');
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
await producer.connect();
const pollId = `poll-${id}`;
const now = Date.now();
await producer.send({
  topic: `${prefix}polls`,
  acks: -1,
  messages: [
    {
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
    },
  ],
});
for (let i = 0; i < votes; i += 1000) {
  const messages = [];
  for (let j = i; j < Math.min(votes, i + 1000); j++) {
    const v: VoteCast = {
      voteId: randomUUID(),
      pollId,
      optionId: j % 2 ? 'a' : 'b',
      voterId: `voter-${j}`,
      idempotencyKey: randomUUID(),
      castAt: null,
      receivedAt: Date.now(),
      evidence: {
        challenge: 'NOT_REQUIRED',
        challengeId: null,
        tokenId: null,
        networkPrefix: '127.0.0.0/24',
        userAgent: null,
        deviceId: null,
        attestation: null,
      },
    };
    messages.push({ key: `${pollId}/${v.voterId}`, value: encodeVote(v) });
  }
  await producer.send({ topic: `${prefix}votes`, acks: -1, messages });
}

async function consumeAll(topic: string, expected: number, decode: boolean): Promise<number> {
  const c = kafka.consumer({ groupId: `${id}-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  const decodeVote = serde.decoder('VoteCast');
  let n = 0;
  const started = Date.now();
  await new Promise<void>((resolve) => {
    void c.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) if (decode && m.value) await decodeVote(m.value);
        n += batch.messages.length;
        if (n >= expected) resolve();
      },
    });
  });
  const ms = Date.now() - started;
  await c.disconnect();
  return ms;
}

const baselineMs = await consumeAll(`${prefix}votes`, votes, true);
const env = {
  ...process.env,
  TOPIC_PREFIX: prefix,
  SCHEMA_SUBJECT_PREFIX: `${id}.`,
  STREAM_APPLICATION_ID: `${id}-app`,
  STREAM_STAGES: 'dedupe',
  STREAM_METRICS_PORT: '0',
  LOG_LEVEL: 'info',
};
const start = (): { child: ChildProcess; restoreLog: Promise<string> } => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'stream/src/main.ts'], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let lines = '';
  child.stdout?.on('data', (d: Buffer) => {
    lines += d.toString();
  });
  return { child, restoreLog: new Promise((r) => child.on('exit', () => r(lines))) };
};
const p1 = start();
const streamStarted = Date.now();
// The process needs a few seconds to start (tsx, registry, group join): measured from the first decision instead.
const firstAndAll = await (async () => {
  const c = kafka.consumer({ groupId: `${id}-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topics: [`${prefix}vote-decisions`], fromBeginning: true });
  let n = 0;
  let first = 0;
  await new Promise<void>((resolve) => {
    void c.run({
      eachBatch: async ({ batch }) => {
        if (!first) first = Date.now();
        n += batch.messages.length;
        if (n >= votes) resolve();
      },
    });
  });
  const all = Date.now();
  await c.disconnect();
  return { first, all };
})();
p1.child.kill('SIGTERM');
await p1.restoreLog;
const p2 = start();
await new Promise((r) => setTimeout(r, 15_000));
p2.child.kill('SIGTERM');
const log = await p2.restoreLog;
const restored = log
  .split('\n')
  .filter((l) => l.includes('task created'))
  .map((l) => JSON.parse(l) as { restored: number; ms: number });
const restoredRecords = restored.reduce((n, r) => n + r.restored, 0);
const restoreMs = restored.reduce((n, r) => Math.max(n, r.ms), 0);

const table = new VoterTable();
const fp = { hi: 0, lo: 0 };
for (let i = 0; i < 1_000_000; i++) table.insert(fingerprintOf(`voter-${i}`, fp), randomUUID());

console.log(`votes: ${votes}`);
console.log(
  `baseline read_committed consume+decode: ${Math.round((votes * 1000) / baselineMs)} votes/s (${baselineMs} ms)`,
);
console.log(
  `dedupe stage exactly-once, first to last decision: ${Math.round((votes * 1000) / Math.max(1, firstAndAll.all - firstAndAll.first))} votes/s (${firstAndAll.all - firstAndAll.first} ms; process start to last decision ${firstAndAll.all - streamStarted} ms)`,
);
console.log(
  `restore: ${restoredRecords} changelog records, slowest task ${restoreMs} ms (tasks restore in parallel) => ${Math.round((restoredRecords * 1000) / Math.max(1, restoreMs))} records/s`,
);
console.log(`dedupe table: ${(table.bytes / table.size).toFixed(1)} bytes per remembered voter at 1M voters`);
await producer.disconnect();
await admin
  .deleteTopics({
    topics: ['votes', 'polls', 'vote-decisions', 'tally-partials', 'tallies'].map((n) => `${prefix}${n}`),
  })
  .catch(() => {});
await admin.disconnect();
process.exit(0);
