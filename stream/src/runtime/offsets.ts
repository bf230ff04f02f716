import type { Admin } from 'kafkajs';

export interface PartitionOffsets {
  partition: number;
  low: bigint;
  high: bigint;
}

const attemptsMax = 8;
let queue: Promise<unknown> = Promise.resolve();
/** Per admin and topic: the read queued and not started yet. */
const notStarted = new WeakMap<Admin, Map<string, Promise<PartitionOffsets[]>>>();

/**
 * Low and high offsets of every partition of a topic, read after the call. Calls are serialised per process
 * (KafkaJS's fetchTopicOffsets is not safe to run concurrently on one admin right after a topic was created) and
 * retried with backoff up to `attemptsMax` times. A call for a topic whose read is queued and not started yet
 * shares that read (it happens after both calls): the tasks of a rebalance restoring at once read each changelog
 * topic's ends once or twice instead of once per task. The result is shared: callers only read it.
 */
export function topicOffsets(admin: Admin, topic: string): Promise<PartitionOffsets[]> {
  const pending = notStarted.get(admin) ?? new Map<string, Promise<PartitionOffsets[]>>();
  notStarted.set(admin, pending);
  const queued = pending.get(topic);
  if (queued) return queued;
  const run = async (): Promise<PartitionOffsets[]> => {
    pending.delete(topic);
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
  pending.set(topic, next);
  queue = next.catch(() => {});
  return next;
}
