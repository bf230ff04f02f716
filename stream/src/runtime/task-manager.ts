import type { Logger, TransactionalProducers } from '@votestream/runtime';
import type { Kafka } from 'kafkajs';
import { type FatalHandler, recoveryOf, TaskFailuresExhaustedError } from './errors.ts';
import type { PartitionCounts } from './partitions.ts';
import type { ProcessorFactory } from './processor.ts';
import { StreamTask, type TaskContext, type TaskState } from './task.ts';
import { TaskProducer } from './task-producer.ts';

const failureBackoffMsMax = 5000;

/** Back-off before task `partition` is rebuilt after its n-th consecutive failure (creation or commit alike). */
export function failureBackoffMs(failures: number): number {
  return Math.min(100 * 2 ** failures, failureBackoffMsMax);
}

export interface TaskManagerOptions {
  ctx: TaskContext;
  kafka: Kafka;
  producers?: TransactionalProducers | undefined;
  inputTopic: string;
  transactionTimeoutMs: number;
  taskFailuresMax: number;
  partitionCounts: PartitionCounts;
  groupId: string;
  /** transactionalId of partition p is `${transactionalIdPrefix}-${p}`: stable, so a new owner fences the old. */
  transactionalIdPrefix: string;
  createProcessor: ProcessorFactory;
  onFatal: FatalHandler;
}

/** One task's state as /readyz reports it. */
export interface TaskReport {
  stage: string;
  partition: number;
  state: TaskState;
  /** Changelog records the task restored, and the time its creation took (fence + restore); 0 until running. */
  restoredRecords: number;
  restoreMs: number;
}

/**
 * The tasks of one stage in this process (Kafka Streams' TaskManager): creates a task when its partition is
 * assigned (every batch of the partition waits for it), closes it when revoked, and decides recovery from the
 * type of a task's error (errors.ts): fenced -> close, the assignment decides; transient -> close and rebuild
 * after a back-off; broken invariant, or taskFailuresMax consecutive failures of one task -> the fatal handler.
 */
export class TaskManager {
  private readonly tasks = new Map<number, { task: StreamTask; created: Promise<StreamTask> }>();
  private readonly failures = new Map<number, number>();
  private assigned = new Set<number>();
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly o: TaskManagerOptions) {
    this.log = o.ctx.logger;
  }

  /** The group assigned these partitions: close the tasks of the others, create the missing ones now. */
  assign(partitions: readonly number[]): void {
    this.assigned = new Set(partitions);
    for (const p of [...this.tasks.keys()]) if (!this.assigned.has(p)) void this.close(p, 'revoked');
    for (const p of partitions) void this.task(p).catch(() => {}); // handled in task()
  }

  /** The task of `partition`, created (and restored) if there is none. Rejects if creation failed. */
  task(partition: number): Promise<StreamTask> {
    const existing = this.tasks.get(partition);
    if (existing) return existing.created;
    const { ctx } = this.o;
    const transactionalId = `${this.o.transactionalIdPrefix}-${partition}`;
    const producer = new TaskProducer({
      kafka: this.o.kafka,
      producers: this.o.producers,
      stage: ctx.stage,
      inputTopic: this.o.inputTopic,
      partition,
      groupId: this.o.groupId,
      transactionalId,
      transactionTimeoutMs: this.o.transactionTimeoutMs,
      partitionCounts: this.o.partitionCounts,
      metrics: ctx.metrics,
      logger: this.log,
    });
    const task = new StreamTask(partition, ctx, producer, this.o.createProcessor(partition));
    const created = task.initialize().then((restored) => {
      ctx.metrics.restores.inc({ stage: ctx.stage });
      ctx.metrics.restoredRecords.inc({ stage: ctx.stage }, restored);
      ctx.metrics.tasks.set({ stage: ctx.stage }, this.running().length);
      this.log.info(
        { partition, transactionalId, restored, nextOffset: String(task.position), ms: task.restoreMs },
        'task created: producer fenced, state restored',
      );
      return task;
    });
    this.tasks.set(partition, { task, created });
    created.catch((err: unknown) => {
      if (this.tasks.get(partition)?.task === task) this.tasks.delete(partition);
      this.log.error({ err, partition }, 'task creation failed');
      // Still ours: try again after a back-off, so the task is fenced and restored before its first batch
      // (a partition with no new records would otherwise wait for one).
      const n = this.countFailure(partition, err);
      if (n === undefined) return;
      setTimeout(() => {
        if (!this.stopping && this.assigned.has(partition) && !this.tasks.has(partition)) {
          void this.task(partition).catch(() => {});
        }
      }, failureBackoffMs(n)).unref();
    });
    return created;
  }

  /** A batch of the task committed: its run of consecutive failures is over. */
  succeeded(partition: number): void {
    this.failures.delete(partition);
  }

  /**
   * A task's batch or punctuation failed (its transaction aborted): recovery by the error's type. The task is
   * closed (rebuilt from its changelog on the next batch or assignment), then the caller waits the back-off.
   */
  async failed(partition: number, err: unknown): Promise<void> {
    const recovery = recoveryOf(err);
    if (recovery === 'fatal') {
      this.o.onFatal(err);
      return;
    }
    const { ctx } = this.o;
    ctx.metrics.commitFailures.inc({ stage: ctx.stage });
    const n = this.countFailure(partition, err);
    if (recovery === 'rejoin') {
      this.log.warn({ err, partition, failures: n }, 'task failed: fenced by a newer owner, closing');
    } else this.log.warn({ err, partition, failures: n }, 'task failed: aborting, rebuilding from changelog');
    await this.close(partition, recovery === 'rejoin' ? 'fenced' : 'failed');
    if (n !== undefined) await new Promise((r) => setTimeout(r, failureBackoffMs(n)));
  }

  /** Counts a failure of the task; at taskFailuresMax in a row the fatal handler gets it (undefined returned). */
  private countFailure(partition: number, err: unknown): number | undefined {
    if (recoveryOf(err) === 'fatal') {
      this.o.onFatal(err);
      return undefined;
    }
    const n = (this.failures.get(partition) ?? 0) + 1;
    this.failures.set(partition, n);
    if (n >= this.o.taskFailuresMax) {
      this.o.onFatal(
        new TaskFailuresExhaustedError(`task ${this.o.ctx.stage}/${partition} failed ${n} times in a row`, {
          cause: err,
        }),
      );
      return undefined;
    }
    return n;
  }

  async close(partition: number, why: 'revoked' | 'failed' | 'fenced' | 'shutdown'): Promise<void> {
    const entry = this.tasks.get(partition);
    if (!entry) return;
    this.tasks.delete(partition);
    const { ctx } = this.o;
    ctx.metrics.tasks.set({ stage: ctx.stage }, this.running().length);
    let task: StreamTask;
    try {
      task = await entry.created;
    } catch {
      return; // creation failed: nothing to close
    }
    try {
      await task.close();
      ctx.metrics.taskClosures.inc({ stage: ctx.stage, why });
      this.log.info({ partition, why }, 'task closed');
    } catch (err) {
      this.log.warn({ err, partition, why }, 'task close failed');
    }
  }

  /** Every running task (for punctuation). */
  running(): StreamTask[] {
    return [...this.tasks.values()].map((e) => e.task).filter((t) => t.state === 'running');
  }

  /** States of the tasks this process owns now (created..running; closed tasks are no longer owned). */
  report(): TaskReport[] {
    return [...this.tasks.values()]
      .map(({ task }) => ({
        stage: this.o.ctx.stage,
        partition: task.partition,
        state: task.state,
        restoredRecords: task.restoredRecords,
        restoreMs: task.restoreMs,
      }))
      .sort((a, b) => a.partition - b.partition);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.tasks.keys()].map((p) => this.close(p, 'shutdown')));
  }
}
