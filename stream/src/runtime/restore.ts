import { randomUUID } from 'node:crypto';
import type { Logger } from '@votestream/runtime';
import type { Admin, Kafka } from 'kafkajs';
import { topicOffsets } from './offsets.ts';

/** Longest a task waits for one changelog partition to be read to its end before the process gives up. */
export const restoreTimeoutMs = 300_000;

export interface ChangelogRecord {
  topic: string;
  key: string;
  value: Buffer | null;
}

/**
 * Reads one partition of a changelog topic from its beginning to its end (the end offset taken after the
 * task fenced the previous owner's producer, so no transaction is open on it and the end is stable).
 * KafkaJS has no manual assignment, so this uses a short-lived consumer in a group of its own, with
 * read_committed isolation, that only takes the one partition (the others are paused at once).
 * Returns the number of records restored.
 */
export async function restoreChangelogPartition(opts: {
  kafka: Kafka;
  admin: Admin;
  topic: string;
  partition: number;
  logger: Logger;
  apply: (record: ChangelogRecord) => void;
}): Promise<number> {
  const { kafka, admin, topic, partition } = opts;
  const bounds = (await topicOffsets(admin, topic)).find((o) => o.partition === partition);
  if (!bounds) throw new Error(`changelog ${topic} has no partition ${partition}`);
  const end = bounds.high;
  if (end <= bounds.low) return 0;

  const consumer = kafka.consumer({
    groupId: `${topic}-restore-${randomUUID()}`,
    readUncommitted: false,
    maxBytesPerPartition: 10 * 1024 * 1024,
    maxWaitTimeInMs: 100,
    sessionTimeout: 30_000,
    allowAutoTopicCreation: false,
  });
  let restored = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const done = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`restore of ${topic}[${partition}] timed out after ${restoreTimeoutMs} ms`)),
        restoreTimeoutMs,
      );
      // Emitted after every fetched batch of the partition, also one holding only transaction markers,
      // which never reaches eachBatch; lastOffset counts those markers.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.topic === topic && payload.partition === partition && BigInt(payload.lastOffset) >= end - 1n) {
          resolve();
        }
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (batch.partition !== partition) return;
        for (const m of batch.messages) {
          if (BigInt(m.offset) >= end) break;
          opts.apply({ topic, key: m.key ? m.key.toString() : '', value: m.value });
          restored++;
        }
      },
    });
    const others = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions
      .map((p) => p.partitionId)
      .filter((p) => p !== partition);
    if (others && others.length > 0) consumer.pause([{ topic, partitions: others }]);
    await done;
    return restored;
  } finally {
    clearTimeout(timer);
    await consumer
      .disconnect()
      .catch((err: unknown) => opts.logger.warn({ err, topic }, 'restore consumer disconnect'));
  }
}
