import { randomUUID } from 'node:crypto';
import type { Logger } from '@votestream/runtime';
import { type Admin, AssignerProtocol, type Kafka, type PartitionAssigner } from 'kafkajs';
import { topicOffsets } from './offsets.ts';

/** Longest a task waits for its changelog partitions to be read to their ends before the process gives up. */
export const restoreTimeoutMs = 300_000;
/** Most bytes one restore fetch returns per changelog partition. */
export const restoreFetchPartitionBytesMax = 10 * 1024 * 1024;
/** Most bytes one restore fetch returns in all (twice KafkaJS's 10 MiB default: a task reads two partitions). */
export const restoreFetchBytesMax = 20 * 1024 * 1024;

/**
 * A changelog record as read: the key stays bytes (a restore converts nothing it does not need; the dedupe
 * store's records, nearly all of a restore, are applied from their bytes). A record without a key has an empty one.
 */
export interface ChangelogRecord {
  topic: string;
  partition: number;
  key: Buffer;
  value: Buffer | null;
}

const noKey = Buffer.alloc(0);

/** One changelog partition to restore. */
export interface ChangelogPartition {
  topic: string;
  partition: number;
}

/**
 * The group's only member gets exactly the changelog partitions of the restore (KafkaJS has no manual
 * assignment; this is its public custom-assigner API). Nothing else is ever fetched.
 */
function fixedAssigner(assignment: Record<string, number[]>): PartitionAssigner {
  return () => ({
    name: 'VotestreamRestoreAssigner',
    version: 0,
    async assign({ members }) {
      if (members.length !== 1) throw new Error(`a restore group has one member, got ${members.length}`);
      return members.map(({ memberId }) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment,
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'VotestreamRestoreAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
      };
    },
  });
}

/**
 * Reads changelog partitions from their beginnings to their ends (each end offset taken here, after the task
 * fenced the previous owner's producer, so no transaction is open on them and the ends are stable), with one
 * short-lived read_committed consumer for all of them: a group of its own whose only member is assigned exactly
 * these partitions (one group join per restore, not one per partition; no other partition is fetched).
 * Records of each partition are applied in offset order; records of different partitions interleave.
 * Returns the number of records restored.
 */
export async function restoreChangelogs(opts: {
  kafka: Kafka;
  admin: Admin;
  partitions: readonly ChangelogPartition[];
  logger: Logger;
  apply: (record: ChangelogRecord) => void;
}): Promise<number> {
  const { kafka, admin } = opts;
  /** End offset per `topic` then partition, of the partitions that have records to read. */
  const ends = new Map<string, Map<number, bigint>>();
  const assignment: Record<string, number[]> = {};
  let pending = 0;
  for (const topic of new Set(opts.partitions.map((p) => p.topic))) {
    const offsets = await topicOffsets(admin, topic);
    for (const { partition } of opts.partitions.filter((p) => p.topic === topic)) {
      const bounds = offsets.find((o) => o.partition === partition);
      if (!bounds) throw new Error(`changelog ${topic} has no partition ${partition}`);
      if (bounds.high <= bounds.low || ends.get(topic)?.has(partition)) continue;
      const byPartition = ends.get(topic) ?? new Map<number, bigint>();
      byPartition.set(partition, bounds.high);
      ends.set(topic, byPartition);
      assignment[topic] = [...(assignment[topic] ?? []), partition];
      pending++;
    }
  }
  if (pending === 0) return 0;

  const topics = [...ends.keys()];
  const consumer = kafka.consumer({
    groupId: `${topics[0]}-restore-${randomUUID()}`,
    partitionAssigners: [fixedAssigner(assignment)],
    readUncommitted: false,
    maxBytesPerPartition: restoreFetchPartitionBytesMax,
    maxBytes: restoreFetchBytesMax,
    maxWaitTimeInMs: 100,
    sessionTimeout: 30_000,
    allowAutoTopicCreation: false,
  });
  let restored = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    const done = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`restore of ${topics.join(', ')} timed out after ${restoreTimeoutMs} ms`)),
        restoreTimeoutMs,
      );
      // Emitted after every fetched batch of a partition, also one holding only transaction markers, which
      // never reaches eachBatch; lastOffset counts those markers.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const byPartition = ends.get(payload.topic);
        const end = byPartition?.get(payload.partition);
        if (end !== undefined && BigInt(payload.lastOffset) >= end - 1n) {
          byPartition?.delete(payload.partition);
          if (--pending === 0) resolve();
        }
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        const { topic, partition } = batch;
        const end = ends.get(topic)?.get(partition);
        if (end === undefined) return; // read to its end already (or never asked for)
        // Offsets are compared only in the batch that reaches the end (the others are below it as a whole).
        const whole = BigInt(batch.lastOffset()) < end;
        for (const m of batch.messages) {
          if (!whole && BigInt(m.offset) >= end) break;
          opts.apply({ topic, partition, key: m.key ?? noKey, value: m.value });
          restored++;
        }
      },
    });
    await done;
    return restored;
  } finally {
    clearTimeout(timer);
    await consumer
      .disconnect()
      .catch((err: unknown) => opts.logger.warn({ err, topics }, 'restore consumer disconnect'));
  }
}
