import { invariant, type Logger } from '@votestream/runtime';
import type { KafkaMessage } from 'kafkajs';
import type { StreamConfig } from '../config.ts';
import { taskPosition } from './changelog.ts';
import { type DeadLetterRoute, RecordCollector } from './collector.ts';
import { IllegalTaskStateError } from './errors.ts';
import type { StreamMetrics } from './metrics.ts';
import type { Clock, TaskProcessor } from './processor.ts';
import type { ChangelogRecord } from './restore.ts';

/**
 * created -> restoring (producer fenced, changelogs being read) -> running -> closing (queued work drains,
 * nothing new starts) -> closed. A failed restore goes restoring -> closing -> closed. Every method names the
 * states it is allowed in and throws IllegalTaskStateError (fatal) in any other, as KafkaJS's eosManager does.
 */
export type TaskState = 'created' | 'restoring' | 'running' | 'closing' | 'closed';
export const taskStates: readonly TaskState[] = ['created', 'restoring', 'running', 'closing', 'closed'];

/** What a task needs from its stage: shared by every task of the stage. */
export interface TaskContext {
  stage: string;
  config: Pick<StreamConfig, 'commitRecordsMax' | 'idleTimeoutMs'>;
  logger: Logger;
  metrics: StreamMetrics;
  clock: Clock;
  deadLetterRoute(partition: number): DeadLetterRoute | undefined;
  /**
   * Reads partition `partition` of each changelog of `topics` from its beginning to its end, applying each record
   * (restoreChangelogs on Kafka; the test driver reads its in-memory changelog). Returns the count.
   */
  restoreChangelogs(
    topics: readonly string[],
    partition: number,
    apply: (record: ChangelogRecord) => void,
  ): Promise<number>;
}

/** The task's transactions (TaskProducer on Kafka; the test driver records them in memory). */
export interface TaskTransactions {
  /** Fences the previous owner of the task's transactionalId (before the task restores). */
  fence(): Promise<void>;
  /** One transaction: every record of `out`, then the input offset `nextOffset` (absent: a punctuation). */
  commit(out: RecordCollector, nextOffset: bigint | undefined): Promise<void>;
  disconnect(): Promise<void>;
}

/** One fetched batch of the task's input partition, with KafkaJS's callbacks for it. */
export interface TaskBatch {
  messages: readonly KafkaMessage[];
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  /** Resolves once the side state the processor reads has caught up (the read barrier); absent: none. */
  barrier?: () => Promise<void>;
}

/**
 * One input partition's processing (Kafka Streams' StreamTask): its processor and state, its transactional
 * producer, its position. Batches and punctuations run one at a time (one transaction at a time).
 */
export class StreamTask {
  private current: TaskState = 'created';
  /** Next input offset to process: everything before it is in the committed state. -1: nothing committed yet. */
  private nextOffset = -1n;
  private lastRecordAtMs: number;
  /** Serialises batches and punctuations of the task: one transaction at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** A queued batch or punctuation failed: nothing of this task is committed any more (see run()). */
  private failed = false;
  /** Changelog records applied by initialize(), and how long it took (fence + restore). */
  restoredRecords = 0;
  restoreMs = 0;

  constructor(
    readonly partition: number,
    private readonly ctx: TaskContext,
    private readonly producer: TaskTransactions,
    private readonly processor: TaskProcessor,
  ) {
    invariant(
      processor.changelogTopics.includes(processor.positionChangelog),
      `the position changelog ${processor.positionChangelog} is one of the processor's changelogs`,
    );
    this.lastRecordAtMs = ctx.clock();
  }

  get state(): TaskState {
    return this.current;
  }

  private expect(method: string, ...allowed: TaskState[]): void {
    if (!allowed.includes(this.current)) {
      throw new IllegalTaskStateError(
        `${method} of task ${this.ctx.stage}/${this.partition} in state ${this.current} (allowed: ${allowed.join(', ')})`,
      );
    }
  }

  /**
   * created -> restoring -> running: fences the previous owner, then reads every changelog partition of the
   * task to its end, all in one read (one consumer group join: a new group waits group.initial.rebalance.delay.ms,
   * 3 s on MSK, before its first assignment, so one read per changelog would add that delay per changelog to the
   * failover time; records of different stores interleave, and never interact).
   * On failure the task is closed and the error rethrown. Returns the number of records restored.
   */
  async initialize(): Promise<number> {
    this.expect('initialize', 'created');
    this.current = 'restoring';
    const { ctx, processor, partition } = this;
    const startedAt = performance.now();
    let restored = 0;
    try {
      await this.producer.fence();
      let corrupt: unknown;
      restored = await ctx.restoreChangelogs(processor.changelogTopics, partition, (record) => {
        if (corrupt !== undefined) return;
        try {
          if (record.topic === processor.positionChangelog && taskPosition.isKey(record.key)) {
            if (record.value) this.nextOffset = taskPosition.decode(record.value);
          } else processor.restore(record);
        } catch (err) {
          corrupt = err; // thrown once the read is over (ChangelogCorruptError/InvariantError: fatal)
        }
      });
      if (corrupt !== undefined) throw corrupt;
      processor.restored();
    } catch (err) {
      this.current = 'closing';
      await this.producer.disconnect().catch(() => {}); // the restore's error is the one that matters
      this.current = 'closed';
      throw err;
    }
    this.restoredRecords = restored;
    this.restoreMs = Math.round(performance.now() - startedAt);
    this.current = 'running';
    this.lastRecordAtMs = ctx.clock();
    return restored;
  }

  /** The restored position (for the log line of a created task). */
  get position(): bigint {
    return this.nextOffset;
  }

  /**
   * Queues `fn` behind the task's batch or punctuation in progress. After one of them failed the task commits
   * nothing more (`failed`): the processor's state may hold what the failed transaction did not commit (a batch
   * that threw halfway counted votes whose dedupe entries and decisions were never committed), and a punctuation
   * queued behind it would commit those counts; the rebuilt task then counted the votes again (two double counts
   * in a 100-fault chaos run). The task manager closes and rebuilds the task from its changelogs.
   */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      try {
        return await fn();
      } catch (err) {
        this.failed = true;
        throw err;
      }
    });
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * Processes a fetched batch: records below the task's position are skipped (a previous owner committed
   * them), the rest go in transactions of at most commitRecordsMax records, each resolving its last offset
   * after the commit. Returns the heartbeat error when the group started rebalancing (what is committed stays
   * committed; the caller hands it to KafkaJS to rejoin). A task that started closing processes nothing.
   */
  processBatch(batch: TaskBatch): Promise<unknown> {
    this.expect('processBatch', 'running', 'closing');
    return this.run(async () => {
      if (this.current !== 'running' || this.failed) return undefined;
      const { ctx } = this;
      const { config } = ctx;
      let rebalancing: unknown;
      // A fetched batch is in offset order: the records to do are those from the first one at or past the position
      // (one BigInt per record skipped, not one per record).
      let skip = 0;
      while (skip < batch.messages.length && BigInt((batch.messages[skip] as KafkaMessage).offset) < this.nextOffset)
        skip++;
      const todo = skip === 0 ? batch.messages : batch.messages.slice(skip);
      if (batch.barrier && todo.length > 0) await batch.barrier();
      for (let from = 0; from < todo.length; from += config.commitRecordsMax) {
        const chunk = todo.slice(from, from + config.commitRecordsMax);
        const last = chunk[chunk.length - 1];
        invariant(last, 'a chunk has records');
        const next = BigInt(last.offset) + 1n;
        invariant(next > this.nextOffset, 'a task never commits an offset before the one it committed last');
        const out = new RecordCollector(ctx.deadLetterRoute(this.partition));
        await this.processor.process(chunk, out);
        this.processor.flush(ctx.clock(), out);
        await this.commit(out, next);
        this.nextOffset = next;
        batch.resolveOffset(last.offset);
        ctx.metrics.records.inc({ stage: ctx.stage }, chunk.length);
        try {
          await batch.heartbeat();
        } catch (err) {
          rebalancing = err;
          break;
        }
      }
      if (todo.length === 0) {
        const last = batch.messages[batch.messages.length - 1];
        if (last) batch.resolveOffset(last.offset); // already in the committed state (a previous owner did them)
      }
      this.lastRecordAtMs = ctx.clock();
      return rebalancing;
    });
  }

  /**
   * Processing-time callback: the processor may advance its watermark (when the task is idle), emit final
   * partials and evict windows; what it sends is committed. Idle (the processor may advance its watermark on the
   * clock, and so finalise polls) only if no record came for idleTimeoutMs and the input partition is at its end
   * now, read after `nowMs` (`reachedEnd`: are the partition's end offsets at or below the given position?):
   * every record appended before `nowMs` is then processed. The lag seen at the last fetch is not enough: a
   * consumer that stopped fetching for a while (a broker failure, a slow rebalance) still looked caught up, and a
   * poll was finalised before votes acknowledged before its close were processed (found by the broker-fault test).
   */
  punctuate(nowMs: number, reachedEnd: (nextOffset: bigint) => Promise<boolean>): Promise<void> {
    this.expect('punctuate', 'running', 'closing');
    return this.run(async () => {
      if (this.current !== 'running' || this.failed) return;
      const idle = nowMs - this.lastRecordAtMs >= this.ctx.config.idleTimeoutMs && (await reachedEnd(this.nextOffset));
      const out = new RecordCollector();
      this.processor.punctuate(nowMs, idle, out);
      if (out.size > 0) await this.commit(out, undefined);
    });
  }

  /** The task's transaction: outputs + changelog writes + (when offsets move) the position and the offsets. */
  private async commit(out: RecordCollector, nextOffset: bigint | undefined): Promise<void> {
    if (nextOffset !== undefined) {
      out.send(this.processor.positionChangelog, taskPosition.key, taskPosition.encode(nextOffset), this.partition);
    }
    await this.producer.commit(out, nextOffset);
  }

  /** running -> closing -> closed: waits for the queued batch or punctuation, then closes the producer. */
  async close(): Promise<void> {
    this.expect('close', 'running');
    this.current = 'closing';
    await this.queue;
    try {
      await this.producer.disconnect();
    } finally {
      this.current = 'closed';
    }
  }
}
