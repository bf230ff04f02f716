import { randomUUID } from 'node:crypto';
import { invariant, type Logger } from '@votestream/runtime';
import type { PollEvent } from '@votestream/schemas';
import type { Consumer, Kafka } from 'kafkajs';
import { type CatalogEntry, catalogPollsMax, mergePollEvent } from './rules.ts';

/** Low and high (end) offset of one partition, as `Admin.fetchTopicOffsets` reports them. */
export interface PartitionOffsets {
  partition: number;
  low: bigint;
  high: bigint;
}

/** The catalog did not read the polls topic up to the requested offsets in time. */
export class CatalogBarrierTimeoutError extends Error {
  constructor(timeoutMs: number, behind: readonly string[]) {
    super(`poll catalog did not reach the polls offsets within ${timeoutMs} ms (behind: ${behind.join(', ')})`);
    this.name = 'CatalogBarrierTimeoutError';
  }
}

export interface PollCatalogReaderOptions {
  kafka: Kafka;
  /** The compacted `polls` topic (PollEvent, key pollId). */
  topic: string;
  decode: (buf: Buffer) => Promise<PollEvent>;
  logger: Logger;
  /** Prefix of the reader's own consumer group (a random suffix is added; the IAM policies allow it by prefix). */
  groupIdPrefix: string;
  /** The topic's current end offsets (read_committed high watermarks); `catchUp` waits for them. */
  endOffsets: () => Promise<readonly PartitionOffsets[]>;
  /** Longest `catchUp` waits for the end offsets before it throws CatalogBarrierTimeoutError. */
  catchUpTimeoutMs: number;
  /** Polls held at most (default and maximum `catalogPollsMax`). */
  pollsMax?: number;
  /** Test hook (fault injection): awaited before each fetched batch is applied. Production passes nothing. */
  beforeApply?: () => Promise<void>;
}

/**
 * The poll catalog: every poll's entry, in memory, rebuilt from the compacted `polls` topic (read_committed,
 * from the beginning, in a consumer group of its own that never commits, so every process sees every
 * partition) and kept current by that consumer. Entries follow `mergePollEvent`.
 *
 * `waitFor(highs)` is a read barrier: it resolves once every event below the given end offsets is applied. The
 * stream's dedupe stage calls it with the end offsets read after a batch of votes was fetched, so a CLOSED event
 * appended before a vote is known when the vote is decided; `catchUp()` is `waitFor(the end offsets now)`, which
 * makes "unknown poll" a fact and not a lag (ingest wrote the poll before it accepted votes for it).
 */
export class PollCatalogReader {
  private readonly polls = new Map<string, CatalogEntry>();
  /** Per partition: offset of the next record to read (transaction markers included). */
  private readonly positions = new Map<number, bigint>();
  private readonly pollsMax: number;
  private consumer: Consumer | undefined;
  private inFlight: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  private caughtUpOnce = false;

  constructor(private readonly opts: PollCatalogReaderOptions) {
    this.pollsMax = opts.pollsMax ?? catalogPollsMax;
    invariant(
      Number.isInteger(this.pollsMax) && this.pollsMax >= 1 && this.pollsMax <= catalogPollsMax,
      `pollsMax must be 1..${catalogPollsMax}, got ${this.pollsMax}`,
    );
  }

  get size(): number {
    return this.polls.size;
  }

  /** True once the catalog has caught up with the end offsets seen at start (`/readyz`). */
  get ready(): boolean {
    return this.caughtUpOnce;
  }

  get(pollId: string): CatalogEntry | undefined {
    return this.polls.get(pollId);
  }

  entries(): IterableIterator<CatalogEntry> {
    return this.polls.values();
  }

  /**
   * Applies a poll event read at `offset` (by the consumer, or by ingest's admin right after the write was
   * acknowledged). A new poll beyond `pollsMax` is an invariant failure: it throws and changes nothing.
   */
  apply(event: PollEvent, offset: number): void {
    const current = this.polls.get(event.poll.pollId);
    const next = mergePollEvent(current, event.poll, offset);
    if (next === undefined) return;
    invariant(
      current !== undefined || this.polls.size < this.pollsMax,
      `poll catalog is full (pollsMax=${this.pollsMax}): poll ${event.poll.pollId} refused`,
    );
    this.polls.set(next.poll.pollId, next);
  }

  /** Starts the consumer; resolves once caught up with the end offsets seen now (else throws, see catchUp). */
  async start(catchUpTimeoutMs = this.opts.catchUpTimeoutMs): Promise<void> {
    const { kafka, topic, decode, logger } = this.opts;
    const consumer = kafka.consumer({
      groupId: `${this.opts.groupIdPrefix}-${randomUUID()}`,
      readUncommitted: false,
      sessionTimeout: 30_000,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
    });
    this.consumer = consumer;
    // The position moves after the batch is applied, so a waiter woken here sees the batch's events.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      this.positions.set(payload.partition, BigInt(payload.lastOffset) + 1n);
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        if (this.opts.beforeApply) await this.opts.beforeApply();
        for (const m of batch.messages) {
          if (m.value === null) continue;
          try {
            this.apply(await decode(m.value), Number(m.offset));
          } catch (err) {
            // Skipped loudly, not dead-lettered: one bad record must not stop voting on every poll, and every
            // process re-reads the topic at each start, so a dead letter would be written again each time.
            logger.error({ err, offset: m.offset, partition: batch.partition }, 'poll event skipped');
          }
        }
        await heartbeat();
      },
    });
    await this.catchUp(catchUpTimeoutMs);
    this.caughtUpOnce = true;
    logger.info({ polls: this.polls.size }, 'poll catalog caught up');
  }

  /**
   * Resolves once the catalog has read every polls partition up to its end offset as of now; concurrent callers
   * share one read of the end offsets.
   */
  catchUp(timeoutMs = this.opts.catchUpTimeoutMs): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.opts
        .endOffsets()
        .then((ends) => this.waitFor(ends, timeoutMs))
        .finally(() => {
          this.inFlight = undefined;
        });
    }
    return this.inFlight;
  }

  /**
   * Resolves once every event below `highs` (per partition end offsets, read_committed) is applied; an empty
   * partition (high <= low) needs nothing. Rejects with CatalogBarrierTimeoutError after `timeoutMs`. Woken by
   * every batch the consumer finishes (no polling delay), rechecked every 200 ms in case a wake-up is missed.
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
    await this.consumer?.disconnect();
  }
}
