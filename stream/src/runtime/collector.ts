import type { Message, TopicMessages } from 'kafkajs';

/** Outputs and changelog writes of one commit, grouped by topic for one `sendBatch` inside the transaction. */
export class RecordCollector {
  private readonly byTopic = new Map<string, Message[]>();
  private count = 0;

  send(topic: string, key: string, value: Buffer | null, partition?: number): void {
    let messages = this.byTopic.get(topic);
    if (!messages) {
      messages = [];
      this.byTopic.set(topic, messages);
    }
    messages.push(partition === undefined ? { key, value } : { key, value, partition });
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
