import { type Logger, type Topics, topicNames, waitForLeaders } from '@votestream/runtime';
import type { Admin } from 'kafkajs';
import { partitionCount } from './runtime/partitions.ts';

/** Internal topics of the stream application (Kafka Streams naming: `<application.id>-<store>-changelog`). */
export interface StreamTopics extends Topics {
  dedupeChangelog: string;
  partialTallyChangelog: string;
  globalTallyChangelog: string;
  /** The analytics stage keeps no state: its changelog holds only the runtime's task positions. */
  analyticsPositionChangelog: string;
}

export function streamTopics(prefix: string, applicationId: string): StreamTopics {
  return {
    ...topicNames(prefix),
    dedupeChangelog: `${prefix}${applicationId}-dedupe-store-changelog`,
    partialTallyChangelog: `${prefix}${applicationId}-partial-tally-store-changelog`,
    globalTallyChangelog: `${prefix}${applicationId}-global-tally-store-changelog`,
    analyticsPositionChangelog: `${prefix}${applicationId}-analytics-position-changelog`,
  };
}

/**
 * Creates a changelog topic co-partitioned with its input (same partition count), compacted, if it does not
 * exist yet; fails if one exists with another partition count (its partitions would no longer match the tasks).
 */
export async function ensureChangelog(
  admin: Admin,
  topic: string,
  partitions: number,
  replicationFactor: number,
  logger: Logger,
): Promise<void> {
  if (!(await admin.listTopics()).includes(topic)) {
    try {
      // waitForLeaders is off: KafkaJS's own wait can throw UNKNOWN_TOPIC_OR_PARTITION while a busy broker is
      // still propagating the new topic's metadata (seen in CI). The wait below retries instead.
      await admin.createTopics({
        waitForLeaders: false,
        topics: [
          {
            topic,
            numPartitions: partitions,
            replicationFactor,
            configEntries: [
              { name: 'cleanup.policy', value: 'compact' },
              { name: 'min.compaction.lag.ms', value: '60000' },
            ],
          },
        ],
      });
      logger.info({ topic, partitions }, 'changelog topic created');
    } catch (err) {
      // Another process of the application created it first: fine, it is checked below like any other.
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
    }
  }
  await waitForLeaders(admin, [topic]);
  const n = await partitionCount(admin, topic);
  if (n !== partitions) {
    throw new Error(
      `changelog ${topic} has ${n} partitions but its input has ${partitions}: they must be co-partitioned`,
    );
  }
}
