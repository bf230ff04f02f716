import {
  type KafkaTransaction,
  kafkajsTransactionalProducers,
  type Logger,
  type TransactionalProducer,
  type TransactionalProducers,
} from '@votestream/runtime';
import type { Kafka } from 'kafkajs';
import type { PartitionBatch, RecordCollector } from './collector.ts';
import type { StreamMetrics } from './metrics.ts';
import { fastDefaultPartitioner } from './partitioner.ts';
import type { PartitionCounts } from './partitions.ts';

/** Records per produce request of a commit (see commit()): one request per partition per this many records. */
export const sendBatchRecordsMax = 1000;

export interface TaskProducerOptions {
  kafka: Kafka;
  /** The transactional producer client (STREAM_KAFKA_CLIENT); absent: KafkaJS on `kafka`. */
  producers?: TransactionalProducers | undefined;
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
  private readonly producer: TransactionalProducer;

  constructor(private readonly o: TaskProducerOptions) {
    const producers = o.producers ?? kafkajsTransactionalProducers(o.kafka, fastDefaultPartitioner);
    this.producer = producers({ transactionalId: o.transactionalId, transactionTimeoutMs: o.transactionTimeoutMs });
  }

  /**
   * Connects and fences: initialising the transactional id bumps its epoch, so the previous owner can no longer
   * commit, and its open transaction is aborted (or, if already committing, completed) before the task restores.
   */
  fence(): Promise<void> {
    return this.producer.fence();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** One transaction: every record of `out`, then the input offset `nextOffset` (absent: a punctuation). */
  async commit(out: RecordCollector, nextOffset: bigint | undefined): Promise<void> {
    const { o } = this;
    if (out.size === 0 && nextOffset === undefined) return;
    const end = o.metrics.commitSeconds.startTimer({ stage: o.stage });
    const txn = await this.producer.begin();
    try {
      // One produce request per partition (see PartitionBatch: KafkaJS loses or repeats records of a send that
      // spans brokers when one fails) and per sendBatchRecordsMax records (KafkaJS groups a send's records in
      // O(n²) of the records per partition); partitions in parallel, a partition's requests in order.
      const batches = out.partitionBatches(await o.partitionCounts.of(out.topics()), sendBatchRecordsMax);
      await Promise.all(batches.map((partitionBatches) => this.sendInOrder(txn, partitionBatches)));
      if (nextOffset !== undefined) {
        await txn.sendOffsets(o.groupId, o.inputTopic, o.partition, nextOffset);
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
  private async sendInOrder(txn: KafkaTransaction, batches: PartitionBatch[]): Promise<void> {
    for (const { topic, partition, messages } of batches) {
      if (!(await txn.send(topic, partition, messages)))
        throw new Error(`the send to ${topic}/${partition} resolved without its acknowledgement`);
    }
  }
}
