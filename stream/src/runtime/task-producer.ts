import type { Logger } from '@votestream/runtime';
import type { Admin, Kafka, Producer, TopicMessages, Transaction } from 'kafkajs';
import { placeOnPartitions, type RecordCollector, unacknowledged } from './collector.ts';
import type { StreamMetrics } from './metrics.ts';
import { fastDefaultPartitioner } from './partitioner.ts';

const commitTimeoutMs = 30_000;
/** Records per produce request of a commit (see commit()); a commit sends ceil(records / this) requests. */
export const sendBatchRecordsMax = 1000;
/** Sends of one slice in one transaction while KafkaJS leaves partitions unwritten (see unacknowledged()). */
const sendAttemptsMax = 5;

/** Partition counts of output topics, read once per topic per stage (partitions are never removed). */
export class PartitionCounts {
  private readonly countOf = new Map<string, number>();
  constructor(private readonly admin: Admin) {}

  async of(slice: TopicMessages[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const { topic } of slice) {
      let n = this.countOf.get(topic);
      if (n === undefined) {
        n = (await this.admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions.length ?? 0;
        if (n === 0) throw new Error(`topic ${topic} has no partitions in the metadata`);
        this.countOf.set(topic, n);
      }
      counts.set(topic, n);
    }
    return counts;
  }
}

export interface TaskProducerOptions {
  kafka: Kafka;
  stage: string;
  inputTopic: string;
  partition: number;
  /** Consumer group whose offsets each transaction commits. */
  groupId: string;
  /** Stable per input partition (KafkaJS 2.2.4 has no KIP-447): a new owner initialising it fences the old one. */
  transactionalId: string;
  transactionTimeoutMs: number;
  partitionCounts: PartitionCounts;
  metrics: StreamMetrics;
  logger: Logger;
}

/**
 * The transactional producer of one task (Kafka Streams' StreamsProducer + RecordCollectorImpl's send): one
 * Kafka transaction per commit holding the task's outputs, its changelog writes and its input offsets.
 */
export class TaskProducer {
  private readonly producer: Producer;

  constructor(private readonly o: TaskProducerOptions) {
    this.producer = o.kafka.producer({
      transactionalId: o.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: o.transactionTimeoutMs,
      allowAutoTopicCreation: false,
      createPartitioner: fastDefaultPartitioner,
    });
  }

  /**
   * Connects and fences: initialising the transactional id bumps its epoch, so the previous owner can no longer
   * commit, and its open transaction is aborted (or, if already committing, completed) before the task restores.
   */
  async fence(): Promise<void> {
    await this.producer.connect();
    const fence = await this.producer.transaction();
    await fence.abort();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** One transaction: every record of `out`, then the input offset `nextOffset` (absent: a punctuation). */
  async commit(out: RecordCollector, nextOffset: bigint | undefined): Promise<void> {
    const { o } = this;
    if (out.size === 0 && nextOffset === undefined) return;
    const end = o.metrics.commitSeconds.startTimer({ stage: o.stage });
    const txn = await this.producer.transaction();
    try {
      // Several produce requests, all inside this one transaction: KafkaJS groups a sendBatch's records per
      // partition in O(n²) of the records per partition, so one request per sendBatchRecordsMax records.
      for (const slice of out.topicMessageSlices(sendBatchRecordsMax)) await this.sendAll(txn, slice);
      if (nextOffset !== undefined) {
        await txn.sendOffsets({
          consumerGroupId: o.groupId,
          topics: [{ topic: o.inputTopic, partitions: [{ partition: o.partition, offset: String(nextOffset) }] }],
        });
      }
      await txn.commit();
    } catch (err) {
      await txn.abort().catch((abortErr: unknown) => {
        // The commit's own error decides recovery; an abort that fails too (fenced, broker gone) changes nothing:
        // the broker aborts the transaction at the latest after transactionTimeoutMs or at the next fence.
        o.logger.warn({ err: abortErr, partition: o.partition }, 'abort after a failed commit failed too');
      });
      throw err;
    }
    end();
    o.metrics.commits.inc({ stage: o.stage });
  }

  /**
   * Sends a slice inside the transaction and checks that every partition of it was acknowledged: KafkaJS can
   * resolve a send that spans brokers without writing some partitions when a broker fails mid-send (see
   * unacknowledged()); those are sent again, and after sendAttemptsMax the commit fails (the transaction aborts).
   */
  private async sendAll(txn: Transaction, slice: TopicMessages[]): Promise<void> {
    let pending = placeOnPartitions(slice, await this.o.partitionCounts.of(slice));
    for (let attempt = 1; ; attempt++) {
      const acked = await txn.sendBatch({ topicMessages: pending, acks: -1, timeout: commitTimeoutMs });
      pending = unacknowledged(pending, acked);
      if (pending.length === 0) return;
      const partitions = pending.flatMap(({ topic, messages }) => [
        ...new Set(messages.map((m) => `${topic}/${m.partition}`)),
      ]);
      this.o.metrics.sendGaps.inc({ stage: this.o.stage }, partitions.length);
      this.o.logger.warn(
        { partition: this.o.partition, attempt, partitions },
        'send resolved without writing these partitions',
      );
      if (attempt >= sendAttemptsMax)
        throw new Error(`partitions left unwritten after ${attempt} sends: ${partitions.join(', ')}`);
    }
  }
}
