import { invariant } from '@votestream/runtime';
import type { Message, Producer } from 'kafkajs';

/** Thrown synchronously by `submit` when the batcher cannot take a vote; the caller answers 503 at once. */
export class BatcherFullError extends Error {
  override readonly name = 'BatcherFullError';
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message);
  }
}

export interface BatcherLimits {
  /** Votes accepted into the batcher and not yet acknowledged by Kafka (queued + being sent). */
  votesInFlightMax: number;
  /** Votes per produce request. */
  batchMessagesMax: number;
  /** How long the first vote of a batch waits for company. */
  lingerMs: number;
  /** Per produce request, including the producer's own retries. */
  produceTimeoutMs: number;
  /** After a failed send, `submit` refuses new votes for this long (the broker is likely gone). */
  backoffMs: number;
  /**
   * Produce requests outstanding at once. 1 matches the idempotent producer's single in-flight request
   * per connection: while one batch is on the wire the next one fills up (adaptive batching).
   */
  sendsInFlightMax: number;
}

export interface BatcherStats {
  onBatch?(messages: number, seconds: number, ok: boolean): void;
}

/**
 * The vote was never handed to the producer: it waited past its send deadline (behind slow batches). Nothing of it
 * can reach Kafka, so the caller may free the voter.
 */
export class VoteNotSentError extends Error {
  override readonly name = 'VoteNotSentError';
}

interface Pending {
  message: Message;
  /** Epoch ms after which this vote must not be handed to the producer any more (see `submit`). */
  sendByMs: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The vote path's bounded in-process batcher: many votes per Kafka produce request, a hard cap on votes
 * in flight, and a promise per vote that resolves only when the batch holding it was acknowledged by
 * all in-sync replicas (acks = -1 on an idempotent producer). Batches go out in order, one produce
 * request per `send`; KafkaJS pipelines them on the broker connection.
 */
export class VoteBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private unavailableUntil = 0;
  private closed = false;
  private readonly sending = new Set<Promise<void>>();

  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    private readonly topic: string,
    private readonly limits: BatcherLimits,
    private readonly stats: BatcherStats = {},
    /** Epoch ms: send deadlines and the back-off are judged by it (the unit tests move it). */
    private readonly now: () => number = Date.now,
  ) {
    invariant(limits.batchMessagesMax >= 1 && limits.votesInFlightMax >= limits.batchMessagesMax, 'batcher limits');
  }

  get votesInFlight(): number {
    return this.inFlight;
  }

  /** Whether the last send failed less than `backoffMs` ago. */
  get failing(): boolean {
    return this.now() < this.unavailableUntil;
  }

  /**
   * Resolves when Kafka acknowledged the vote; rejects if it could not. Throws BatcherFullError at once when full.
   * `sendByMs`: a vote still queued at that time is rejected with VoteNotSentError instead of being sent, so that
   * every append of it happens before a known deadline (the vote's lease, see votes/admission.ts).
   */
  submit(message: Message, sendByMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.closed) throw new BatcherFullError('shutting down', 5);
    if (this.inFlight >= this.limits.votesInFlightMax) {
      throw new BatcherFullError(`${this.limits.votesInFlightMax} votes in flight (PRODUCE_VOTES_IN_FLIGHT_MAX)`, 1);
    }
    if (this.now() < this.unavailableUntil) {
      throw new BatcherFullError('Kafka did not acknowledge the last batch', Math.ceil(this.limits.backoffMs / 1000));
    }
    this.inFlight++;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ message, sendByMs, resolve, reject });
      if (this.queue.length >= this.limits.batchMessagesMax) this.flush();
      else if (this.timer === undefined && this.sending.size < this.limits.sendsInFlightMax) {
        this.timer = setTimeout(() => this.flush(), this.limits.lingerMs);
      }
    });
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queue.length > 0 && this.sending.size < this.limits.sendsInFlightMax) {
      const batch = this.queue.splice(0, this.limits.batchMessagesMax);
      const p = this.send(batch);
      this.sending.add(p);
      void p.finally(() => {
        this.sending.delete(p);
        // What queued up while this batch was on the wire goes out now.
        if (this.queue.length > 0) this.flush();
      });
    }
  }

  private async send(all: Pending[]): Promise<void> {
    const started = process.hrtime.bigint();
    const now = this.now();
    let batch = all;
    if (all.some((p) => p.sendByMs < now)) {
      batch = [];
      for (const p of all) {
        if (p.sendByMs >= now) batch.push(p);
        else {
          this.inFlight--;
          p.reject(new VoteNotSentError('the vote waited past its send deadline'));
        }
      }
      if (batch.length === 0) return;
    }
    const messages = new Array<Message>(batch.length);
    for (let i = 0; i < batch.length; i++) messages[i] = (batch[i] as Pending).message;
    let error: Error | undefined;
    try {
      await this.producer.send({
        topic: this.topic,
        messages,
        acks: -1, // all in-sync replicas: a 202 never rests on one broker's page cache
        timeout: this.limits.produceTimeoutMs,
      });
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
      this.unavailableUntil = this.now() + this.limits.backoffMs;
    }
    this.inFlight -= batch.length;
    invariant(this.inFlight >= 0, 'votes in flight went negative');
    this.stats.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9, error === undefined);
    for (const p of batch) {
      if (error) p.reject(error);
      else p.resolve();
    }
  }

  /** Stops taking votes, sends what is queued and waits for every send to settle. */
  async drain(): Promise<void> {
    this.closed = true;
    this.flush();
    while (this.sending.size > 0 || this.queue.length > 0) {
      await Promise.allSettled([...this.sending]);
      if (this.sending.size === 0) this.flush();
    }
  }
}
