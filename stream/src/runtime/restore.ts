import { createRequire } from 'node:module';
import type { Logger } from '@votestream/runtime';
import type { Admin, Kafka, KafkaMessage } from 'kafkajs';
import { topicOffsets } from './offsets.ts';

/** Longest a task waits for one changelog partition to be read to its end before the process gives up. */
export const restoreTimeoutMs = 300_000;
/** Most bytes one restore fetch asks for (the broker's fetch.max.bytes, 55 MB by default, caps it too). */
export const restoreFetchBytesMax = 32 * 1024 * 1024;
/** Longest the broker holds a restore fetch when it has nothing to return (only while behind a marker). */
const restoreFetchWaitMs = 100;

export interface ChangelogRecord {
  topic: string;
  key: string;
  value: Buffer | null;
}

// KafkaJS 2.2.4 (pinned) has no manual assignment: a consumer must join a group, and the join (JoinGroup,
// SyncGroup, the first OffsetFetch) cost more than reading a small changelog. The restore reads the partition
// with fetch requests to its leader instead, through the client's own internals: the cluster its Kafka object
// creates (the private createCluster), Broker.fetch, and the consumer's Batch (which drops control records and
// records of aborted transactions, as read_committed must). These are KafkaJS internals: the version is pinned,
// and `kafkaInternals()` throws at the first restore if they are not what this code expects.
interface PartitionData {
  partition: number;
  highWatermark: string;
  abortedTransactions: unknown[];
  messages: KafkaMessage[];
}
interface InternalBatch {
  messages: KafkaMessage[];
  lastOffset(): string;
}
interface InternalBroker {
  fetch(request: {
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }> }>;
  }): Promise<{ responses: Array<{ topicName: string; partitions: PartitionData[] }> }>;
}
interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(o: { nodeId: string }): Promise<InternalBroker>;
}
const readCommitted = 1; // kafkajs/src/protocol/isolationLevel READ_COMMITTED

function kafkaInternals(kafka: Kafka): {
  createCluster: () => InternalCluster;
  Batch: new (topic: string, fetchedOffset: string, data: PartitionData) => InternalBatch;
} {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  const create = symbol && (kafka as unknown as Record<symbol, unknown>)[symbol];
  const require = createRequire(import.meta.url);
  const Batch = require('kafkajs/src/consumer/batch.js') as unknown;
  if (typeof create !== 'function' || typeof Batch !== 'function')
    throw new Error('restore: KafkaJS internals (createCluster, consumer/batch) are not those of KafkaJS 2.2.4');
  return {
    createCluster: () =>
      (create as (o: object) => InternalCluster)({ isolationLevel: readCommitted, allowAutoTopicCreation: false }),
    Batch: Batch as new (topic: string, fetchedOffset: string, data: PartitionData) => InternalBatch,
  };
}

/**
 * Reads one partition of a changelog topic from its beginning to its end (the end offset taken after the
 * task fenced the previous owner's producer, so no transaction is open on it and the end is stable), with
 * read_committed fetches of up to `restoreFetchBytesMax` straight to the partition's leader (no consumer group),
 * and applies each fetch's records in offset order in one synchronous loop while the next fetch is under way.
 * Returns the number of records applied.
 */
export async function restoreChangelogPartition(opts: {
  kafka: Kafka;
  admin: Admin;
  topic: string;
  partition: number;
  logger: Logger;
  apply: (record: ChangelogRecord) => void;
  /** Bytes per fetch (default restoreFetchBytesMax); the broker returns at least one record batch whatever it is. */
  fetchBytesMax?: number;
}): Promise<number> {
  const { kafka, admin, topic, partition } = opts;
  const fetchBytes = opts.fetchBytesMax ?? restoreFetchBytesMax;
  const bounds = (await topicOffsets(admin, topic)).find((o) => o.partition === partition);
  if (!bounds) throw new Error(`changelog ${topic} has no partition ${partition}`);
  const end = bounds.high;
  if (end <= bounds.low) return 0;

  const { createCluster, Batch } = kafkaInternals(kafka);
  const cluster = createCluster();
  const deadline = performance.now() + restoreTimeoutMs;
  let restored = 0;
  try {
    await cluster.connect();
    await cluster.addTargetTopic(topic);
    const leader = Object.entries(cluster.findLeaderForPartitions(topic, [partition])).find(([, ps]) =>
      ps.includes(partition),
    )?.[0];
    if (leader === undefined) throw new Error(`changelog ${topic}[${partition}] has no leader`);
    const broker = await cluster.findBroker({ nodeId: leader });
    const fetchAt = (fetchOffset: string): Promise<InternalBatch> => {
      const fetched = broker
        .fetch({
          isolationLevel: readCommitted,
          maxWaitTime: restoreFetchWaitMs,
          minBytes: 1,
          maxBytes: fetchBytes,
          topics: [{ topic, partitions: [{ partition, fetchOffset, maxBytes: fetchBytes }] }],
        })
        .then(({ responses }) => {
          const data = responses.find((r) => r.topicName === topic)?.partitions.find((p) => p.partition === partition);
          if (!data) throw new Error(`restore of ${topic}[${partition}]: fetch response without the partition`);
          // Batch drops records before fetchOffset, control records and records of aborted transactions; its
          // lastOffset() counts the markers too (so a fetch of markers only still moves on).
          return new Batch(topic, fetchOffset, data);
        });
      fetched.catch(() => {}); // awaited below; not unhandled if an apply throws first
      return fetched;
    };
    let offset = bounds.low;
    let pending: Promise<InternalBatch> | undefined = fetchAt(String(offset));
    while (pending) {
      if (performance.now() > deadline)
        throw new Error(`restore of ${topic}[${partition}] timed out after ${restoreTimeoutMs} ms`);
      const batch: InternalBatch = await pending;
      const next = BigInt(batch.lastOffset()) + 1n;
      if (next > offset) offset = next;
      // The next fetch is under way while this one is applied.
      pending = offset < end ? fetchAt(String(offset)) : undefined;
      const messages = batch.messages;
      // Offsets only grow: only a fetch whose last record is at or past the end needs the cut-off found.
      let count = messages.length;
      const lastMessage = messages[count - 1];
      if (lastMessage && BigInt(lastMessage.offset) >= end) {
        count = 0;
        while (count < messages.length && BigInt((messages[count] as KafkaMessage).offset) < end) count++;
      }
      for (let i = 0; i < count; i++) {
        const m = messages[i] as KafkaMessage;
        opts.apply({ topic, key: m.key ? m.key.toString() : '', value: m.value });
      }
      restored += count;
    }
    return restored;
  } finally {
    await cluster.disconnect().catch((err: unknown) => opts.logger.warn({ err, topic }, 'restore client disconnect'));
  }
}
