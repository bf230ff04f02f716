import { randomUUID } from 'node:crypto';
import type { Logger } from '@votestream/runtime';
import type { AvroSerde, PollDefinition } from '@votestream/schemas';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { topicOffsets } from './runtime/offsets.ts';

/** Longest a caller waits for the catalog to reach the end of the polls topic. */
export const catalogCatchUpTimeoutMs = 15_000;

/**
 * The poll catalog: every poll's latest definition, rebuilt from the compacted `polls` topic (read_committed,
 * from the beginning, in a consumer group of its own so every process sees every partition). A vote for a poll
 * the catalog does not know first waits for the catalog to reach the topic's current end: ingest wrote the
 * poll before it accepted votes for it, so only then is "unknown poll" a fact and not a lag.
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
      this.inFlight = this.catchUpOnce().finally(() => {
        this.inFlight = undefined;
      });
    }
    return this.inFlight;
  }

  private async catchUpOnce(): Promise<void> {
    const ends = await topicOffsets(this.admin, this.topic);
    const deadline = Date.now() + catalogCatchUpTimeoutMs;
    for (;;) {
      const behind = ends.some((e) => e.high > e.low && (this.positions.get(e.partition) ?? 0n) < e.high);
      if (!behind) return;
      if (Date.now() > deadline) throw new Error(`poll catalog did not catch up within ${catalogCatchUpTimeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
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
