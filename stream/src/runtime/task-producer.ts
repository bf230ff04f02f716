import type { Logger } from '@votestream/runtime';
import type { Kafka, Producer, Transaction } from 'kafkajs';
import type { PartitionBatch, RecordCollector } from './collector.ts';
import type { StreamMetrics } from './metrics.ts';
import { fastDefaultPartitioner } from './partitioner.ts';
import type { PartitionCounts } from './partitions.ts';

const commitTimeoutMs = 30_000;
/** Records per produce request of a commit (see commit()): one request per partition per this many records. */
export const sendBatchRecordsMax = 1000;

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
      // One produce request per partition (see PartitionBatch: KafkaJS loses or repeats records of a send that
      // spans brokers when one fails) and per sendBatchRecordsMax records (KafkaJS groups a send's records in
      // O(n²) of the records per partition); partitions in parallel, a partition's requests in order.
      const batches = out.partitionBatches(await o.partitionCounts.of(out.topics()), sendBatchRecordsMax);
      await Promise.all(batches.map((partitionBatches) => this.sendInOrder(txn, partitionBatches)));
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

  /** One partition's batches, one produce request each, in order; each must come back acknowledged. */
  private async sendInOrder(txn: Transaction, batches: PartitionBatch[]): Promise<void> {
    for (const { topic, partition, messages } of batches) {
      const acked = await txn.send({ topic, messages, acks: -1, timeout: commitTimeoutMs });
      if (!acked.some((r) => r.topicName === topic && r.partition === partition))
        throw new Error(`the send to ${topic}/${partition} resolved without its acknowledgement`);
    }
  }
}
