// Benchmark of the changelog restore at a size where the per-record cost matters (run by hand:
// `nice -n 19 node --import tsx bench/restore.ts [records] [rounds]`, defaults 500000 records, 2 rounds).
// bench/stream.ts restores the changelogs its pipeline wrote (a few 10k records at its default size, so fixed
// costs dominate there); this one writes the dedupe changelog of `partitions` tasks directly, as the dedupe stage
// writes it (key pollId/voterId, value the voteId; transactions of 5,000 records, every 10th aborted, a task
// position and a watermark in the tally changelog of each partition), then, interleaved A/B per round:
//   A. the runtime's restore reader into fresh DedupeProcessors, every task in parallel, both of its changelogs,
//      as a process restores after a rebalance (from the call to the last record applied; group joins counted);
//   B. baseline: a plain read_committed consume of the same changelog topics (one consumer, from its group join
//      to the last batch: the join is not counted), nothing applied.
// Each prints records/s and the process's CPU per record over the same span (less noisy on a shared machine).
// Each restore is checked: records read = committed records, voters remembered = committed dedupe records.
// BENCH_CPU_PROF_DIR=<dir>: the restore rounds only (not the fill, not the baseline) are profiled into
// <dir>/restore-*.cpuprofile (node:inspector, the profile `node --cpu-prof` writes, without the fill in it).
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { stack, uniqueId } from '@votestream/devstack';
import { createKafka, createLogger, waitForLeaders } from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import { streamTopics } from '../stream/src/index.ts';
import { taskPosition } from '../stream/src/runtime/changelog.ts';
import { consumeChangelogs, type RestoreFigures, restoreDedupeTasks } from './restore-kit.ts';

const records = Number(process.argv[2] ?? 500_000);
const rounds = Number(process.argv[3] ?? 2);
const partitions = 4;
const txRecords = 5000;
const abortEvery = 10;
const id = uniqueId('bench-restore');
const prefix = `b-${id}.`;
const logger = createLogger('bench', 'warn');
const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
const internal = streamTopics(prefix, `${id}-app`);
const changelogs = [internal.partialTallyChangelog, internal.dedupeChangelog];
const admin = kafka.admin();
await admin.connect();
const cleanup = async () => {
  await admin.deleteTopics({ topics: changelogs }).catch(() => {});
  await admin.disconnect();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
await admin.createTopics({
  waitForLeaders: false,
  topics: changelogs.map((topic) => ({
    topic,
    numPartitions: partitions,
    replicationFactor: 1,
    configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
  })),
});
await waitForLeaders(admin, changelogs);

// Fill: one transactional producer per partition (as the tasks write), all partitions at once.
const fillStarted = performance.now();
const perPartition = Math.ceil(records / partitions);
const committed = await Promise.all(
  Array.from({ length: partitions }, async (_, p) => {
    const producer = kafka.producer({
      transactionalId: `${id}-fill-${p}`,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    let dedupe = 0;
    let total = 0;
    for (let i = 0, tx = 0; i < perPartition; tx++) {
      const abort = tx % abortEvery === abortEvery - 1;
      const n = Math.min(txRecords, perPartition - i);
      const t = await producer.transaction();
      await t.send({
        topic: internal.dedupeChangelog,
        acks: -1,
        messages: Array.from({ length: n }, (_, j) => ({
          partition: p,
          key: `poll-${p}-${id}/voter-${i + j}${abort ? '-aborted' : ''}`,
          value: randomUUID(),
        })),
      });
      await t.send({
        topic: internal.partialTallyChangelog,
        acks: -1,
        messages: [
          { partition: p, key: taskPosition.key, value: taskPosition.encode(BigInt(tx + 1)) },
          { partition: p, key: 'watermark', value: String(Date.now()) },
        ],
      });
      if (abort) await t.abort();
      else {
        await t.commit();
        i += n;
        dedupe += n;
        total += n + 2;
      }
    }
    await producer.disconnect();
    // Fenced, as a task fences before it restores: the last commit's markers are written, the ends are stable.
    const fence = kafka.producer({ transactionalId: `${id}-fill-${p}`, idempotent: true, maxInFlightRequests: 1 });
    await fence.connect();
    await fence.disconnect();
    return { dedupe, total };
  }),
);
const fillMs = Math.round(performance.now() - fillStarted);
const expectedRecords = committed.reduce((a, c) => a + c.total, 0);

/** A: every task's changelogs restored at once by the runtime's reader into a fresh DedupeProcessor; checked. */
const restoreRun = async (): Promise<RestoreFigures> => {
  const figures = await restoreDedupeTasks({ kafka, admin, serde, logger, prefix, internal, partitions });
  for (const [p, voters] of figures.voters.entries())
    if (voters !== committed[p]?.dedupe)
      throw new Error(`task ${p} remembers ${voters} voters, ${committed[p]?.dedupe} committed`);
  if (figures.records !== expectedRecords)
    throw new Error(`restored ${figures.records} records, ${expectedRecords} committed`);
  return figures;
};

/** B: a plain read_committed consume of the same changelog topics, nothing applied. */
const consumeRun = () => consumeChangelogs({ kafka, groupPrefix: id, topics: changelogs, records: expectedRecords });

const profile = process.env.BENCH_CPU_PROF_DIR ? new Session() : undefined;
if (profile) {
  profile.connect();
  await profile.post('Profiler.enable');
}
const rate = (n: number, ms: number) => Math.round((n * 1000) / Math.max(1, ms));
console.log(
  `changelogs of ${partitions} dedupe tasks: ${expectedRecords} committed records (${committed.reduce((a, c) => a + c.dedupe, 0)} voters; transactions of ${txRecords}, every ${abortEvery}th aborted), written in ${fillMs} ms`,
);
for (let round = 1; round <= rounds; round++) {
  if (profile) await profile.post('Profiler.start');
  const restore = await restoreRun();
  if (profile) {
    const { profile: p } = await profile.post('Profiler.stop');
    writeFileSync(join(process.env.BENCH_CPU_PROF_DIR ?? '.', `restore-${id}-${round}.cpuprofile`), JSON.stringify(p));
  }
  const consume = await consumeRun();
  const ratio = rate(restore.records, restore.ms) / Math.max(1, rate(consume.records, consume.ms));
  console.log(
    `round ${round}: restore reader into ${partitions} DedupeProcessors ${restore.records} records in ${restore.ms} ms => ${rate(restore.records, restore.ms)} records/s, ${(restore.cpuUs / restore.records).toFixed(2)} CPU-us/record; baseline read_committed consume ${consume.records} records in ${consume.ms} ms => ${rate(consume.records, consume.ms)} records/s, ${(consume.cpuUs / consume.records).toFixed(2)} CPU-us/record; ratio ${ratio.toFixed(2)} (records/s), ${(restore.cpuUs / restore.records / (consume.cpuUs / consume.records)).toFixed(2)}x CPU per record`,
  );
}
await cleanup();
process.exit(0);
