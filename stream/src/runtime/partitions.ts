import { waitForLeaders } from '@votestream/runtime';
import type { Admin } from 'kafkajs';

/**
 * The partition count of `topic`. Bounded retries (waitForLeaders: 30 s): on a cluster, a broker that has not yet
 * applied a new topic's metadata lists no such topic, or answers UNKNOWN_TOPIC_OR_PARTITION, for a while (seen on
 * the 3-node cluster right after the topics were created).
 */
export async function partitionCount(admin: Admin, topic: string): Promise<number> {
  const why = `topic ${topic} does not exist or has no leaders (topic auto-creation is off: create it first)`;
  const meta = await waitForLeaders(admin, [topic]).catch((cause: unknown) => {
    throw new Error(why, { cause });
  });
  const n = meta.topics[0]?.partitions.length ?? 0;
  if (n === 0) throw new Error(why);
  return n;
}

/**
 * Partition counts of output topics, read once per topic per stage (with partitionCount's bounded wait): partitions
 * are never removed, and adding partitions to a keyed topic moves keys (never done in place: docs/architecture.md §7).
 */
export class PartitionCounts {
  private readonly countOf = new Map<string, number>();
  constructor(private readonly admin: Admin) {}

  async of(topics: readonly string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const topic of topics) {
      let n = this.countOf.get(topic);
      if (n === undefined) {
        n = await partitionCount(this.admin, topic);
        this.countOf.set(topic, n);
      }
      counts.set(topic, n);
    }
    return counts;
  }
}
