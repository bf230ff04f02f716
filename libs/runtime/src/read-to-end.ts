import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

export interface ReadToEndOptions {
  /** Gives up with an error naming the partitions still behind after this long. */
  timeoutMs: number;
  /** Prefix of the throwaway consumer group (it never commits; Kafka expires it). */
  groupIdPrefix: string;
}

/**
 * Reads a whole topic, read_committed, from the beginning up to the end offsets it has when the call starts,
 * and resolves once every partition was read that far (transaction markers included: a topic written in
 * transactions ends with a commit marker no message stands for). `onMessage` sees each record in offset order
 * within its partition. Uses a consumer group of its own that never commits.
 */
export async function readTopicToEnd(
  kafka: Kafka,
  topic: string,
  onMessage: (partition: number, message: KafkaMessage) => void | Promise<void>,
  opts: ReadToEndOptions,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
  const next = new Map<number, bigint>();
  const behind = () =>
    [...ends]
      .filter(([p, end]) => end > 0n && (next.get(p) ?? 0n) < end)
      .map(([p, end]) => `${p}@${next.get(p) ?? 0n}<${end}`);
  if (behind().length === 0) return;

  const consumer = kafka.consumer({
    groupId: `${opts.groupIdPrefix}-${randomUUID()}`,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
  });
  let wake: () => void = () => {};
  // END_BATCH_PROCESS also fires for a batch of transaction markers only, so the position passes them.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    next.set(payload.partition, BigInt(payload.lastOffset) + 1n);
    wake();
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const end = ends.get(batch.partition) ?? 0n;
          if (BigInt(m.offset) < end) await onMessage(batch.partition, m);
        }
      },
    });
    const deadline = Date.now() + opts.timeoutMs;
    while (behind().length > 0) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `${topic} not read to its end offsets within ${opts.timeoutMs} ms (behind: ${behind().join(', ')})`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    await consumer.disconnect();
  }
}
