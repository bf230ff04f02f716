import { deadLetterReasonOf, deadLetterRecord } from '@votestream/runtime';
import type { KafkaMessage, Message } from 'kafkajs';
import { keyPartition } from './partitioner.ts';

/** Where a task's poison records go: the dead-letter topic, in the same transaction as its other output. */
export interface DeadLetterRoute {
  topic: string;
  sourceTopic: string;
  sourcePartition: number;
  /** The stage's consumer group. */
  consumer: string;
  counted(reason: string): void;
}

/** Outputs and changelog writes of one commit, grouped by topic for one `sendBatch` inside the transaction. */
export class RecordCollector {
  private readonly byTopic = new Map<string, Message[]>();
  private count = 0;

  constructor(private readonly deadLetters?: DeadLetterRoute) {}

  /** `key` as text, or as the bytes of its UTF-8 (e.g. an input record's key passed on: no decode and encode). */
  send(topic: string, key: string | Buffer, value: Buffer | null, partition?: number): void {
    this.push(topic, partition === undefined ? { key, value } : { key, value, partition });
  }

  /**
   * A record the processor cannot decode (`err`; null: it has no value): its dead letter joins this commit, so it
   * is written exactly once with the offsets that move past it. False if `err` is not about the record's bytes
   * (the caller rethrows: the batch fails and is retried).
   */
  deadLetter(message: KafkaMessage, err: unknown): boolean {
    const route = this.deadLetters;
    const reason = deadLetterReasonOf(err);
    if (route === undefined || reason === null) return false;
    const source = { topic: route.sourceTopic, partition: route.sourcePartition, message, consumer: route.consumer };
    this.push(route.topic, deadLetterRecord(source, reason, err));
    route.counted(reason);
    return true;
  }

  private push(topic: string, message: Message): void {
    let messages = this.byTopic.get(topic);
    if (!messages) {
      messages = [];
      this.byTopic.set(topic, messages);
    }
    messages.push(message);
    this.count++;
  }

  get size(): number {
    return this.count;
  }

  /** The topics this commit writes to. */
  topics(): string[] {
    return [...this.byTopic.keys()];
  }

  /**
   * The records grouped per partition (a keyed record on the partition the producer's default partitioner would
   * pick among the topic's `partitions`; an explicit partition stays), each group in send order and cut into
   * batches of at most `max` records. A commit sends each batch as a produce request of its own: see
   * PartitionBatch.
   */
  partitionBatches(partitions: ReadonlyMap<string, number>, max: number): PartitionBatch[][] {
    const groups: PartitionBatch[][] = [];
    for (const [topic, messages] of this.byTopic) {
      const count = partitions.get(topic);
      if (count === undefined || count <= 0) throw new Error(`no partition count for topic ${topic}`);
      const byPartition: Array<PartitionBatch[] | undefined> = []; // this topic's groups, by partition
      for (const m of messages) {
        let partition = m.partition;
        if (partition === undefined || partition === null) {
          if (m.key === null || m.key === undefined)
            throw new Error(`a record for ${topic} has neither key nor partition`);
          partition = keyPartition(m.key, count);
        }
        let batches = byPartition[partition];
        if (!batches) {
          batches = [];
          byPartition[partition] = batches;
          groups.push(batches);
        }
        let last = batches[batches.length - 1];
        if (!last || last.messages.length >= max) {
          last = { topic, partition, messages: [] };
          batches.push(last);
        }
        last.messages.push(m.partition === partition ? m : { ...m, partition });
      }
    }
    return groups;
  }
}

/**
 * Records of one partition of one topic: what one produce request of a commit carries.
 *
 * KafkaJS 2.2.4 mishandles a send that spans several brokers when one of them fails: the retry re-reads the
 * leaders but sends only to brokers that have not answered yet, so the records of a partition whose new leader
 * had already answered are dropped, and the records of an answered partition whose leadership moved to a broker
 * that has not answered are sent again with new sequence numbers (producer/sendMessages.js,
 * `brokersWithoutResponse`). Inside a transaction the first commits a dedupe changelog entry without its
 * decision (a vote never counted: the broker-fault test lost 50 of 803 acknowledged votes), the second a
 * decision twice. A send of one partition has one leader at a time, so neither can happen.
 */
export interface PartitionBatch {
  topic: string;
  partition: number;
  messages: Message[];
}
