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

  topicMessages(): TopicMessages[] {
    return [...this.byTopic].map(([topic, messages]) => ({ topic, messages }));
  }
}
