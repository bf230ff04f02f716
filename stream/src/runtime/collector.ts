import { deadLetterReasonOf, deadLetterRecord } from '@votestream/runtime';
import type { KafkaMessage, Message, TopicMessages } from 'kafkajs';

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
