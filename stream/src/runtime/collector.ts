import { deadLetterReasonOf, deadLetterRecord } from '@votestream/runtime';
import type { KafkaMessage, Message, RecordMetadata, TopicMessages } from 'kafkajs';
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

  send(topic: string, key: string, value: Buffer | null, partition?: number): void {
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

  /** The records in send order, grouped by topic, cut into slices of at most `max` records each. */
  topicMessageSlices(max: number): TopicMessages[][] {
    const slices: TopicMessages[][] = [];
    let slice: TopicMessages[] = [];
    let n = 0;
    for (const [topic, messages] of this.byTopic) {
      for (let from = 0; from < messages.length; ) {
        const take = Math.min(max - n, messages.length - from);
        slice.push({ topic, messages: messages.slice(from, from + take) });
        from += take;
        n += take;
        if (n === max) {
          slices.push(slice);
          slice = [];
          n = 0;
        }
      }
    }
    if (n > 0) slices.push(slice);
    return slices;
  }
}

/**
 * The records of `slice` with their partition made explicit: an explicit partition stays, a keyed record gets
 * the default partitioner's choice for the topic's partition count (`partitions`), as the producer would pick.
 */
export function placeOnPartitions(slice: TopicMessages[], partitions: ReadonlyMap<string, number>): TopicMessages[] {
  return slice.map(({ topic, messages }) => {
    const count = partitions.get(topic);
    if (count === undefined || count <= 0) throw new Error(`no partition count for topic ${topic}`);
    return {
      topic,
      messages: messages.map((m) => {
        if (m.partition !== undefined && m.partition !== null) return m;
        if (m.key === null || m.key === undefined)
          throw new Error(`a record for ${topic} has neither key nor partition`);
        return { ...m, partition: keyPartition(m.key, count) };
      }),
    };
  });
}

/**
 * The records of `sent` (every record with an explicit partition) whose partition is not in `acked`.
 *
 * KafkaJS 2.2.4 can resolve a send without writing some of its records: a send spanning several brokers is
 * retried after one broker fails, but the retry goes only to brokers that have not answered yet, so the records
 * of a partition whose new leader had already answered in the first attempt are dropped, and the send resolves
 * (producer/sendMessages.js, `brokersWithoutResponse`). Inside a transaction that commits outputs without their
 * changelog twin (or the reverse). A partition's records are all in one request of one send, so a partition
 * with an acknowledgement has all of them written; one without has none, and is sent again.
 */
export function unacknowledged(sent: TopicMessages[], acked: readonly RecordMetadata[]): TopicMessages[] {
  const got = new Set(acked.map((r) => `${r.partition}\u0000${r.topicName}`));
  const missing: TopicMessages[] = [];
  for (const { topic, messages } of sent) {
    const rest = messages.filter((m) => !got.has(`${m.partition}\u0000${topic}`));
    if (rest.length > 0) missing.push({ topic, messages: rest });
  }
  return missing;
}
