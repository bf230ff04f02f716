// The restore measurements shared by bench/stream.ts (the changelogs its pipeline wrote) and bench/restore.ts (large
// changelogs written directly): the runtime's restore reader into fresh DedupeProcessors, and the baseline, a plain
// read_committed consume of the same changelog topics.
import { randomUUID } from 'node:crypto';
import type { Logger } from '@votestream/runtime';
import type { AvroSerde } from '@votestream/schemas';
import type { Admin, Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { DedupeProcessor, type StreamConfig } from '../stream/src/index.ts';
import { taskPosition } from '../stream/src/runtime/changelog.ts';
import { restoreChangelogs } from '../stream/src/runtime/restore.ts';
import type { StreamTopics } from '../stream/src/topology.ts';

export interface RestoreFigures {
  records: number;
  ms: number;
  /** CPU of this process over the same span (user + system, µs). */
  cpuUs: number;
}

/**
 * Every dedupe task's changelog partitions (both changelogs) restored at once by the runtime's reader into a fresh
 * DedupeProcessor each, as a process restores (from the call to the last record applied, group joins included).
 * Returns the figures and the voters each task remembers.
 */
export async function restoreDedupeTasks(o: {
  kafka: Kafka;
  admin: Admin;
  serde: AvroSerde;
  logger: Logger;
  prefix: string;
  internal: StreamTopics;
  partitions: number;
}): Promise<RestoreFigures & { voters: number[] }> {
  const config = { windowMs: 1000, graceMs: 2000, windowRetentionMs: 600_000 } as StreamConfig;
  const topics = {
    votes: `${o.prefix}votes`,
    voteDecisions: `${o.prefix}vote-decisions`,
    tallyPartials: `${o.prefix}tally-partials`,
    tallyChangelog: o.internal.partialTallyChangelog,
    dedupeChangelog: o.internal.dedupeChangelog,
  };
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const tasks = await Promise.all(
    Array.from({ length: o.partitions }, async (_, p) => {
      const processor = new DedupeProcessor(p, {
        config,
        topics,
        serde: o.serde,
        catalog: { get: () => undefined, all: () => [].values(), catchUp: async () => {} },
        logger: o.logger,
        registry: new Registry(),
      });
      const records = await restoreChangelogs({
        kafka: o.kafka,
        admin: o.admin,
        partitions: processor.changelogTopics.map((topic) => ({ topic, partition: p })),
        logger: o.logger,
        apply: (r) => {
          if (!(r.topic === processor.positionChangelog && taskPosition.isKey(r.key))) processor.restore(r);
        },
      });
      processor.restored();
      return { records, voters: processor.rememberedVoters() };
    }),
  );
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  return {
    records: tasks.reduce((a, t) => a + t.records, 0),
    ms: Math.round(ms),
    cpuUs: cpu.user + cpu.system,
    voters: tasks.map((t) => t.voters),
  };
}

/** Baseline: one plain read_committed consumer of `topics` until `records` are fetched (from its group join). */
export async function consumeChangelogs(o: {
  kafka: Kafka;
  groupPrefix: string;
  topics: string[];
  records: number;
}): Promise<RestoreFigures> {
  const c = o.kafka.consumer({
    groupId: `${o.groupPrefix}-${randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 10 * 1024 * 1024,
  });
  // From the group join (the consumer has its partitions) to the last batch: the join itself is not counted.
  let first = 0;
  let cpu0 = process.cpuUsage();
  c.on(c.events.GROUP_JOIN, () => {
    first = performance.now();
    cpu0 = process.cpuUsage();
  });
  await c.connect();
  await c.subscribe({ topics: o.topics, fromBeginning: true });
  let n = 0;
  let last = 0;
  let cpu = { user: 0, system: 0 };
  await new Promise<void>((resolve) => {
    void c.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        n += batch.messages.length;
        if (n >= o.records) {
          last = performance.now();
          cpu = process.cpuUsage(cpu0);
          resolve();
        }
      },
    });
  });
  await c.disconnect();
  return { records: n, ms: Math.round(last - first), cpuUs: cpu.user + cpu.system };
}
