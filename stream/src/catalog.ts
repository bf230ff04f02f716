import { type PartitionOffsets, PollCatalogReader } from '@votestream/poll-catalog';
import type { Logger } from '@votestream/runtime';
import type { AvroSerde, PollDefinition } from '@votestream/schemas';
import type { Admin, Kafka } from 'kafkajs';
import { topicOffsets } from './runtime/offsets.ts';
import { catalogApplyDelay } from './test-hooks.ts';

// The rules (close time, merge, size cap) and the reader live in @votestream/poll-catalog, shared with ingest;
// this adapter only fixes the stream's consumer group prefix, how it reads the end offsets and its timeout.
export { CatalogBarrierTimeoutError, closeTimeOf } from '@votestream/poll-catalog';

/** Longest a caller waits for the catalog to reach the end of the polls topic. */
export const catalogCatchUpTimeoutMs = 15_000;

/**
 * The stream's poll catalog: every poll's definition (see `@votestream/poll-catalog` for the merge rule). A vote
 * for a poll the catalog does not know first waits for `catchUp()`: ingest wrote the poll before it accepted
 * votes for it, so only then is "unknown poll" a fact and not a lag. It is also the dedupe stage's read barrier
 * (`waitFor(highs)`, see docs/components/stream.md).
 */
export class PollCatalog {
  private readonly reader: PollCatalogReader;

  constructor(kafka: Kafka, admin: Admin, topic: string, serde: AvroSerde, logger: Logger) {
    this.reader = new PollCatalogReader({
      kafka,
      topic,
      decode: serde.decoder('PollEvent'),
      logger,
      groupIdPrefix: `${topic}-catalog`,
      endOffsets: () => topicOffsets(admin, topic),
      catchUpTimeoutMs: catalogCatchUpTimeoutMs,
      ...catalogApplyDelay(),
    });
  }

  get(pollId: string): PollDefinition | undefined {
    return this.reader.get(pollId)?.poll;
  }

  *all(): IterableIterator<PollDefinition> {
    for (const entry of this.reader.entries()) yield entry.poll;
  }

  start(): Promise<void> {
    return this.reader.start();
  }

  /** Resolves once the catalog has read every polls partition up to its end offset as of now. */
  catchUp(): Promise<void> {
    return this.reader.catchUp();
  }

  /** The read barrier: resolves once every event below `highs` is applied (else CatalogBarrierTimeoutError). */
  waitFor(highs: readonly PartitionOffsets[], timeoutMs: number): Promise<void> {
    return this.reader.waitFor(highs, timeoutMs);
  }

  stop(): Promise<void> {
    return this.reader.stop();
  }
}
