import type { Admin } from 'kafkajs';

export interface PartitionOffsets {
  partition: number;
  low: bigint;
  high: bigint;
}

const attemptsMax = 8;
let queue: Promise<unknown> = Promise.resolve();

/**
 * Low and high offsets of every partition of a topic. Calls are serialised per process (KafkaJS's
 * fetchTopicOffsets is not safe to run concurrently on one admin right after a topic was created) and retried
 * with backoff up to `attemptsMax` times.
 */
export function topicOffsets(admin: Admin, topic: string): Promise<PartitionOffsets[]> {
  const run = async (): Promise<PartitionOffsets[]> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        return offsets.map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }));
      } catch (err) {
        if (attempt >= attemptsMax) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
      }
    }
  };
  const next = queue.then(run, run);
  queue = next.catch(() => {});
  return next;
}
