import { PollCatalogReader } from '@votestream/poll-catalog';
import type { Logger } from '@votestream/runtime';
import type { PollEvent } from '@votestream/schemas';
import type { Kafka } from 'kafkajs';

// The rules (close time, status, merge, size cap) and the reader live in @votestream/poll-catalog, shared with
// the stream; this adapter only fixes ingest's consumer group prefix and how it reads the end offsets.
export {
  type CatalogEntry,
  catalogPollsMax,
  closeTimeOf,
  type PollStatus,
  pollStatus,
} from '@votestream/poll-catalog';

/** Longest start-up waits for the catalog to catch up before ingest gives up (then it exits; /readyz never passed). */
export const catalogStartTimeoutMs = 60_000;

/**
 * Ingest's poll catalog: a fresh consumer group per instance (prefix `ingest-catalog`), never committing, so every
 * instance reads the whole compacted topic; `/readyz` waits for `ready`. The admin applies its own writes with
 * `apply(event, offset)` (read-your-writes on this instance).
 */
export class PollCatalog extends PollCatalogReader {
  constructor(kafka: Kafka, topic: string, decode: (buf: Buffer) => Promise<PollEvent>, logger: Logger) {
    super({
      kafka,
      topic,
      decode,
      logger,
      groupIdPrefix: 'ingest-catalog',
      catchUpTimeoutMs: catalogStartTimeoutMs,
      // A short-lived admin per read: ingest reads the end offsets once, at start.
      endOffsets: async () => {
        const admin = kafka.admin();
        await admin.connect();
        try {
          const offsets = await admin.fetchTopicOffsets(topic);
          return offsets.map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }));
        } finally {
          await admin.disconnect();
        }
      },
    });
  }
}
