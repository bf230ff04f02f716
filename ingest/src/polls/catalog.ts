import { invariant, type Logger } from '@votestream/runtime';
import type { PollDefinition, PollEvent } from '@votestream/schemas';
import type { Admin, Consumer, Kafka } from 'kafkajs';

export type PollStatus = 'scheduled' | 'open' | 'closed';

export interface CatalogEntry {
  poll: PollDefinition;
  /** Offset of the polls-topic record this entry came from; an older record never overwrites it. */
  offset: number;
  /** Option ids, for the vote path's membership check. */
  optionIds: ReadonlySet<string>;
}

/** Polls the catalog holds at most; beyond this the consumer stops with an error (a crash, not silent loss). */
export const catalogPollsMax = 100_000;

export function pollStatus(poll: PollDefinition, now: number): PollStatus {
  if (now < poll.opensAt) return 'scheduled';
  const ends = Math.min(poll.closesAt ?? Number.POSITIVE_INFINITY, poll.closedAt ?? Number.POSITIVE_INFINITY);
  return now >= ends ? 'closed' : 'open';
}

/**
 * Every poll, in memory, rebuilt from the compacted polls topic at start and kept current by a consumer.
 * All events of one poll share a partition (key pollId), so a record's offset orders them: `apply` keeps
 * the entry from the highest offset, which makes the local apply after an admin write (read-your-writes)
 * and the later consumption of that same record commute.
 */
export class PollCatalog {
  private readonly polls = new Map<string, CatalogEntry>();
  private consumer: Consumer | undefined;
  private caughtUp = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly decode: (buf: Buffer) => Promise<PollEvent>,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.polls.size;
  }

  /** True once every partition was read up to the end offset seen at start. */
  get ready(): boolean {
    return this.caughtUp;
  }

  get(pollId: string): CatalogEntry | undefined {
    return this.polls.get(pollId);
  }

  apply(event: PollEvent, offset: number): void {
    const current = this.polls.get(event.poll.pollId);
    if (current !== undefined && current.offset >= offset) return;
    invariant(
      current !== undefined || this.polls.size < catalogPollsMax,
      `poll catalog is full (catalogPollsMax=${catalogPollsMax})`,
    );
    let poll = event.poll;
    // Two admins closing at once on two instances: the earliest close stands.
    const prevClosed = current?.poll.closedAt ?? null;
    if (prevClosed !== null && (poll.closedAt === null || poll.closedAt > prevClosed))
      poll = { ...poll, closedAt: prevClosed };
    this.polls.set(poll.pollId, { poll, offset, optionIds: new Set(poll.options.map((o) => o.id)) });
  }

  /** Reads the topic from the beginning; resolves once caught up with the end offsets seen now. */
  async start(caughtUpTimeoutMs = 60_000): Promise<void> {
    const admin: Admin = this.kafka.admin();
    await admin.connect();
    let ends: Map<number, number>;
    try {
      const offsets = await admin.fetchTopicOffsets(this.topic);
      ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
    } finally {
      await admin.disconnect();
    }
    const positions = new Map<number, number>();
    const check = () => {
      for (const [partition, high] of ends) if ((positions.get(partition) ?? 0) < high) return false;
      return true;
    };
    // A fresh group per instance, never committing: every instance reads the whole compacted topic.
    const consumer = this.kafka.consumer({
      groupId: `ingest-catalog-${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
      readUncommitted: false,
      sessionTimeout: 30_000,
      maxWaitTimeInMs: 250,
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic: this.topic, fromBeginning: true });
    let signal: () => void = () => {};
    const caughtUp = new Promise<void>((resolve) => {
      signal = resolve;
    });
    if (check()) {
      this.caughtUp = true;
      signal();
    }
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        for (const message of batch.messages) {
          if (message.value !== null) {
            try {
              this.apply(await this.decode(message.value), Number(message.offset));
            } catch (err) {
              // An undecodable poll event is skipped loudly: one bad record must not stop voting on every poll.
              this.logger.error({ err, offset: message.offset, partition: batch.partition }, 'poll event skipped');
            }
          }
          positions.set(batch.partition, Number(message.offset) + 1);
        }
        if (!this.caughtUp && check()) {
          this.caughtUp = true;
          this.logger.info({ polls: this.polls.size }, 'poll catalog caught up');
          signal();
        }
        await heartbeat();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      caughtUp,
      new Promise<void>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`poll catalog not caught up after ${caughtUpTimeoutMs} ms`)),
          caughtUpTimeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}
