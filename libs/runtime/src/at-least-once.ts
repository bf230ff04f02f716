import type { Consumer, EachBatchPayload, KafkaMessage, Producer } from 'kafkajs';
import type { Counter } from 'prom-client';
import { InvariantError } from './assert.ts';
import { deadLetterDecoder } from './dead-letter.ts';
import type { Logger } from './logger.ts';

export interface AtLeastOnceLoopOptions<T> {
  consumer: Consumer;
  topic: string;
  /** Where a partition the group has no committed offset for starts. */
  fromBeginning: boolean;
  partitionsConsumedConcurrently: number;
  /** Decodes a record's value; an AvroDecodeError (or no value) makes the record poison. */
  decode: (buf: Buffer) => Promise<T>;
  /**
   * Where poison records go (`deadLetterDecoder`: acks = all, before the offset moves past them; at least once).
   * `consumer` names the group in the dead letter's headers.
   */
  deadLetters: { producer: Producer; topic: string; consumer: string; counter: Counter<'topic' | 'reason'> };
  /**
   * Writes one batch's decoded records (poison records left out; possibly none). It must be idempotent: after a
   * failure it is called again with the same records, and after a crash the batch is consumed again.
   */
  apply: (records: T[]) => Promise<void>;
  /** Back-off between attempts of a failed batch: doubling from `min` to `max` ms. A batch is never skipped. */
  retryDelayMs: { min: number; max: number };
  metrics: {
    /** Records applied (decoded, poison left out), once per batch that succeeded. */
    records?: { inc(value: number): void };
    /** Failed attempts of a batch (each is retried). */
    failures: { inc(): void };
  };
  logger: Logger;
  /**
   * The consumer stopped for good: KafkaJS does not restart a consumer after a non-retriable error (e.g.
   * UNKNOWN_MEMBER_ID on an offset commit while a broker restarts), so nothing would be consumed again.
   */
  onFatal: (err: unknown) => void;
  /** For tests; default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

/** The back-off of every at-least-once loop in the project (`retryDelayMs`): 200 ms doubling to 5 s. */
export const batchRetryDelayMs = { min: 200, max: 5_000 } as const;

/** A back-off longer than this is slept in slices of it, with a heartbeat between them. */
export const backOffSliceMs = 1000;

/** The delay before attempt `attempt + 1` of a failed batch (attempt counts from 0). */
export function retryDelayMsOf(attempt: number, { min, max }: { min: number; max: number }): number {
  return Math.min(max, min * 2 ** Math.min(attempt, 30));
}

/**
 * The one at-least-once consumer loop of the read side (the projections' receipts and tallies, the stream's CQL
 * tally sink). Per batch of one partition:
 * - skip it if it is empty, the consumer is stopping or the partition was sought (nothing resolved or committed);
 * - decode every record (a poison record is dead-lettered by the decoder and left out), then `apply` the records;
 * - a failure of either (Redis/CQL/registry down) is retried in place with back-off while the consumer runs and
 *   owns the partition, heartbeating in between; records already decoded are not decoded again. A broken
 *   invariant is not retried here: it is thrown to KafkaJS, which restarts the consumer;
 * - then resolve and commit `lastOffset + 1` (past trailing transaction markers), and heartbeat.
 * A fetch that held only transaction markers never reaches eachBatch (KafkaJS moves past it without committing):
 * the loop commits past it too, so the committed position reaches the partition's end offset when idle (ingest's
 * stale-vote resolution waits for exactly that on `vote-decisions`, ingest/src/votes/resolution.ts).
 * A consumer KafkaJS will not restart goes to `onFatal`.
 */
export class AtLeastOnceLoop<T> {
  private readonly decode: (topic: string, partition: number, message: KafkaMessage) => Promise<T | null>;

  constructor(private readonly o: AtLeastOnceLoopOptions<T>) {
    const { producer, topic, consumer, counter } = o.deadLetters;
    this.decode = deadLetterDecoder({ producer, deadLetterTopic: topic, consumer, counter, decode: o.decode });
  }

  async start(): Promise<void> {
    const { consumer, topic, logger } = this.o;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      logger.error({ err: payload.error, restart: payload.restart, topic }, 'at-least-once consumer crashed');
      if (!payload.restart) this.o.onFatal(payload.error);
    });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize !== 0 || payload.topic !== topic) return;
      const offset = (BigInt(payload.lastOffset) + 1n).toString();
      consumer
        .commitOffsets([{ topic, partition: payload.partition, offset }])
        .catch((err: unknown) => logger.debug({ err }, 'commit past transaction markers failed'));
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: this.o.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  async stop(): Promise<void> {
    await this.o.consumer.disconnect();
  }

  /** One batch (exported through the class for the unit test of these rules). */
  async onBatch(payload: Pick<EachBatchPayload, 'batch' | 'heartbeat' | 'isRunning' | 'isStale' | 'resolveOffset'>) {
    const { batch, heartbeat, isRunning, isStale, resolveOffset } = payload;
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const { decode } = this;
    const { apply, metrics, logger } = this.o;
    const sleep = this.o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const records: T[] = [];
    let decoded = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        // `decoded` moves only past a record whose decode (and dead letter) succeeded.
        for (; decoded < batch.messages.length; decoded++) {
          const r = await decode(batch.topic, batch.partition, batch.messages[decoded] as KafkaMessage);
          if (r !== null) records.push(r);
        }
        await apply(records);
        break;
      } catch (err) {
        metrics.failures.inc();
        if (err instanceof InvariantError || !isRunning() || isStale()) throw err;
        logger.warn({ err, attempt, topic: batch.topic, partition: batch.partition }, 'batch failed, retrying');
        await heartbeat();
        // The back-off in slices with a heartbeat after each: a wait longer than the session timeout (6 s in
        // projections) would otherwise cost the partition; a consumer stopping or losing it ends the wait.
        for (let wait = retryDelayMsOf(attempt, this.o.retryDelayMs); wait > 0; wait -= backOffSliceMs) {
          await sleep(Math.min(wait, backOffSliceMs));
          if (wait <= backOffSliceMs) break;
          await heartbeat();
          if (!isRunning() || isStale()) throw err;
        }
      }
    }
    metrics.records?.inc(records.length);
    const last = batch.lastOffset();
    // Resolve too: with eachBatchAutoResolve off, KafkaJS fetches from the last resolved offset, so a batch that
    // is only committed is fetched and processed again, forever.
    resolveOffset(last);
    await this.o.consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
    ]);
    await heartbeat();
  }
}
