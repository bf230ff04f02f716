import { randomUUID } from 'node:crypto';
import type { Logger } from '@votestream/runtime';
import type { AvroSerde, PollDefinition } from '@votestream/schemas';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { type PartitionOffsets, topicOffsets } from './runtime/offsets.ts';

/** Longest a caller waits for the catalog to reach the end of the polls topic. */
export const catalogCatchUpTimeoutMs = 15_000;

/** The catalog did not read the polls topic up to the requested offsets in time. */
export class CatalogBarrierTimeoutError extends Error {
  constructor(timeoutMs: number, behind: readonly string[]) {
    super(`poll catalog did not reach the polls offsets within ${timeoutMs} ms (behind: ${behind.join(', ')})`);
    this.name = 'CatalogBarrierTimeoutError';
  }
}

/**
 * The poll catalog: every poll's latest definition, rebuilt from the compacted `polls` topic (read_committed,
 * from the beginning, in a consumer group of its own so every process sees every partition). A vote for a poll
 * the catalog does not know first waits for the catalog to reach the topic's current end: ingest wrote the
 * poll before it accepted votes for it, so only then is "unknown poll" a fact and not a lag.
 *
 * It is also the dedupe stage's read barrier: `waitFor(highs)` resolves once every event below the given
 * end offsets (read after a batch of votes was fetched) is applied, so a CLOSED event appended before a vote
 * is always known when that vote is decided.
 */
export class PollCatalog {
  private readonly polls = new Map<string, PollDefinition>();
  /** Per partition: offset of the next record to read (including transaction markers). */
  private readonly positions = new Map<number, bigint>();
  private readonly consumer: Consumer;
  private inFlight: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly topic: string,
    private readonly serde: AvroSerde,
    private readonly logger: Logger,
    /** Fault injection for tests: each fetched batch is applied this much later. 0 in production. */
    private readonly applyDelayMs = 0,
  ) {
    this.consumer = kafka.consumer({
      groupId: `${topic}-catalog-${randomUUID()}`,
      readUncommitted: false,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
    });
  }

  get(pollId: string): PollDefinition | undefined {
    return this.polls.get(pollId);
  }

  all(): IterableIterator<PollDefinition> {
    return this.polls.values();
  }

  async start(): Promise<void> {
    const decode = this.serde.decoder('PollEvent');
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      this.positions.set(payload.partition, BigInt(payload.lastOffset) + 1n);
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (this.applyDelayMs > 0) await new Promise((r) => setTimeout(r, this.applyDelayMs));
        for (const m of batch.messages) {
          if (!m.value) continue;
          try {
            const event = await decode(m.value);
            this.polls.set(event.poll.pollId, event.poll);
          } catch (err) {
            this.logger.error({ err, offset: m.offset, partition: batch.partition }, 'undecodable poll event skipped');
          }
        }
      },
    });
    await this.catchUp();
    this.logger.info({ polls: this.polls.size }, 'poll catalog loaded');
  }

  /** Resolves once the catalog has read every polls partition up to its end offset as of now. */
  catchUp(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = topicOffsets(this.admin, this.topic)
        .then((ends) => this.waitFor(ends, catalogCatchUpTimeoutMs))
        .finally(() => {
          this.inFlight = undefined;
        });
    }
    return this.inFlight;
  }

  /**
   * True when every event below `highs` (per partition end offsets, read_committed) has been applied. An empty
   * partition (high <= low) needs nothing.
   */
  caughtUpTo(highs: readonly PartitionOffsets[]): boolean {
    return this.behind(highs).length === 0;
  }

  /**
   * Resolves once `caughtUpTo(highs)`; rejects with CatalogBarrierTimeoutError after `timeoutMs`. Woken by every
   * batch the catalog consumer finishes (no polling delay), rechecked every 200 ms in case a wake-up is missed.
   */
  async waitFor(highs: readonly PartitionOffsets[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const behind = this.behind(highs);
      if (behind.length === 0) return;
      if (Date.now() >= deadline) throw new CatalogBarrierTimeoutError(timeoutMs, behind);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(200, Math.max(1, deadline - Date.now())));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private behind(highs: readonly PartitionOffsets[]): string[] {
    const behind: string[] = [];
    for (const e of highs) {
      const at = this.positions.get(e.partition) ?? 0n;
      if (e.high > e.low && at < e.high) behind.push(`${e.partition}@${at}<${e.high}`);
    }
    return behind;
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}

/** The effective end of voting: min(closesAt, closedAt), or null while the poll is open-ended. */
export function closeTimeOf(poll: PollDefinition): number | null {
  const { closesAt, closedAt } = poll;
  if (closesAt === null) return closedAt;
  if (closedAt === null) return closesAt;
  return Math.min(closesAt, closedAt);
}
