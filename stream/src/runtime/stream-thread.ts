import { deadLetterCounter, exportConsumerLag, InvariantError, invariant, type Logger } from '@votestream/runtime';
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer, Transaction } from 'kafkajs';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { StreamConfig } from '../config.ts';
import { type DeadLetterRoute, type PartitionBatch, RecordCollector } from './collector.ts';
import { type PartitionOffsets, topicOffsets } from './offsets.ts';
import { fastDefaultPartitioner } from './partitioner.ts';
import type { ProcessorFactory, TaskProcessor } from './processor.ts';
import { restoreChangelogPartition } from './restore.ts';

/** Changelog key under which the runtime stores the task's next input offset, in the task's first changelog. */
export const positionKey = '\u0000position';
const commitTimeoutMs = 30_000;
const failureBackoffMsMax = 5000;
/** Records per produce request of a commit (see commit()): one request per partition per this many records. */
export const sendBatchRecordsMax = 1000;

export interface StreamThreadOptions {
  /** Stage name, for logs and metrics. */
  stage: string;
  kafka: Kafka;
  admin: Admin;
  inputTopic: string;
  /** Consumer group of the stage; also the group whose offsets each transaction commits. */
  groupId: string;
  /** transactionalId of partition p is `${transactionalIdPrefix}-${p}`: stable, so a new owner fences the old. */
  transactionalIdPrefix: string;
  config: StreamConfig;
  logger: Logger;
  registry: Registry;
  createProcessor: ProcessorFactory;
  /** A state the tasks read that is fed by another topic and must be caught up before a batch is processed. */
  readBarrier?: ReadBarrier;
  /** Where records the processors cannot decode go (in the task's transaction); absent: they fail the task. */
  deadLetterTopic?: string;
}

/**
 * Read barrier: before a task processes a fetched batch, the side state (the poll catalog) must have applied
 * `topic` up to the end offsets that topic had when the batch was fetched. The thread reads those end offsets
 * (read_committed) once per fetch round, shared by the partitions of that round; `waitFor` must resolve when
 * the side state reached them and reject after `timeoutMs` (the batch's transaction then fails: it is never
 * processed without the barrier).
 */
export interface ReadBarrier {
  topic: string;
  timeoutMs: number;
  waitFor(highs: readonly PartitionOffsets[], timeoutMs: number): Promise<void>;
}

interface Task {
  readonly partition: number;
  readonly producer: Producer;
  readonly processor: TaskProcessor;
  /** Next input offset to process: everything before it is in the committed state. -1: nothing committed yet. */
  nextOffset: bigint;
  /** True when the last fetched batch reached the partition's end. */
  lastRecordAtMs: number;
  /** Serialises batches and punctuations of the task: one transaction at a time. */
  queue: Promise<unknown>;
  closed: boolean;
}

class Metrics {
  readonly records: Counter;
  readonly commits: Counter;
  readonly commitFailures: Counter;
  readonly commitSeconds: Histogram;
  readonly restores: Counter;
  readonly restoredRecords: Counter;
  readonly tasks: Gauge;
  readonly deadLetters: Counter<'topic' | 'reason'>;
  constructor(registry: Registry) {
    const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
    const registers = [registry];
    this.deadLetters = deadLetterCounter(registry, 'stream');
    this.records = get(
      'stream_records_processed_total',
      () =>
        new Counter({
          name: 'stream_records_processed_total',
          help: 'Input records processed and committed',
          labelNames: ['stage'],
          registers,
        }),
    );
    this.commits = get(
      'stream_commits_total',
      () =>
        new Counter({ name: 'stream_commits_total', help: 'Committed transactions', labelNames: ['stage'], registers }),
    );
    this.commitFailures = get(
      'stream_commit_failures_total',
      () =>
        new Counter({
          name: 'stream_commit_failures_total',
          help: 'Aborted or failed transactions (the task is rebuilt from its changelog)',
          labelNames: ['stage'],
          registers,
        }),
    );
    this.commitSeconds = get(
      'stream_commit_duration_seconds',
      () =>
        new Histogram({
          name: 'stream_commit_duration_seconds',
          help: 'Time of one transaction (send outputs, changelog, offsets, commit)',
          labelNames: ['stage'],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
          registers,
        }),
    );
    this.restores = get(
      'stream_task_restores_total',
      () =>
        new Counter({
          name: 'stream_task_restores_total',
          help: 'Tasks created (producer fenced, state restored)',
          labelNames: ['stage'],
          registers,
        }),
    );
    this.restoredRecords = get(
      'stream_restored_records_total',
      () =>
        new Counter({
          name: 'stream_restored_records_total',
          help: 'Changelog records applied while restoring',
          labelNames: ['stage'],
          registers,
        }),
    );
    this.tasks = get(
      'stream_tasks_active',
      () =>
        new Gauge({
          name: 'stream_tasks_active',
          help: 'Tasks (input partitions) this process owns',
          labelNames: ['stage'],
          registers,
        }),
    );
  }
}

/**
 * One stage of the topology: a consumer group over the input topic and one task per assigned partition
 * (Kafka Streams' StreamThread + TaskManager). A commit is one Kafka transaction of the task's producer with
 * its outputs, its changelog writes and its input offsets.
 *
 * KafkaJS has no blocking rebalance listener and no KIP-447, so:
 * - a task is created (transactional producer initialised, which fences a previous owner and aborts its open
 *   transaction, then state restored from the changelog) when its partition is assigned, and every batch of
 *   the partition waits for that before it is processed;
 * - the task's next offset is itself in the changelog (written in every transaction), so records a previous
 *   owner committed after our consumer read the group's offsets are skipped, never processed twice;
 * - any failed transaction aborts, throws the task away and rebuilds it from the changelog; the consumer
 *   re-fetches from the last committed offset because offsets are resolved only after a commit.
 */
export class StreamThread {
  private readonly consumer: Consumer;
  private readonly tasks = new Map<number, Promise<Task>>();
  private readonly failures = new Map<number, number>();
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private punctuator: NodeJS.Timeout | undefined;
  private assigned = new Set<number>();
  private stopping = false;
  /** performance.now() of the latest fetch response (KafkaJS emits FETCH before handing out its batches). */
  private lastFetchAt = 0;
  /** The latest end-offsets read of the barrier topic and when it was started. */
  private readonly partitionCountOf = new Map<string, number>();
  private barrierRead: { startedAt: number; offsets: Promise<PartitionOffsets[]> } | undefined;

  constructor(private readonly o: StreamThreadOptions) {
    this.metrics = new Metrics(o.registry);
    this.log = o.logger.child({ stage: o.stage });
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      sessionTimeout: o.config.sessionTimeoutMs,
      heartbeatInterval: o.config.heartbeatIntervalMs,
      rebalanceTimeout: o.config.rebalanceTimeoutMs,
      maxWaitTimeInMs: o.config.fetchMaxWaitMs,
      maxBytesPerPartition: o.config.fetchPartitionBytesMax,
      allowAutoTopicCreation: false,
    });
  }

  async start(): Promise<void> {
    const { consumer, o } = this;
    exportConsumerLag(consumer, o.registry, {
      name: 'stream_consumer_lag_records',
      help: 'Records of the input partition not yet fetched by this stage (after the last batch)',
      labels: { stage: o.stage },
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const partitions = payload.memberAssignment[o.inputTopic] ?? [];
      this.assigned = new Set(partitions);
      this.log.info({ partitions, memberId: payload.memberId }, 'partitions assigned');
      for (const p of [...this.tasks.keys()]) if (!this.assigned.has(p)) void this.closeTask(p, 'revoked');
      for (const p of partitions) void this.task(p).catch(() => {});
    });
    consumer.on(consumer.events.FETCH, () => {
      this.lastFetchAt = performance.now();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
      if (payload.error instanceof InvariantError || !payload.restart) process.exit(1);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [o.inputTopic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: o.config.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.punctuator = setInterval(() => this.punctuateAll(), o.config.punctuateIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.punctuator);
    await this.consumer.disconnect();
    await Promise.all([...this.tasks.keys()].map((p) => this.closeTask(p, 'shutdown')));
  }

  private task(partition: number): Promise<Task> {
    let t = this.tasks.get(partition);
    if (!t) {
      t = this.createTask(partition);
      this.tasks.set(partition, t);
      t.catch((err: unknown) => {
        if (this.tasks.get(partition) === t) this.tasks.delete(partition);
        // Still ours: try again after a back-off, so the task is fenced and restored before its first batch
        // (a partition with no new records would otherwise wait for one). Counted with commit failures:
        // taskFailuresMax in a row ends the process and the supervisor restarts it.
        const n = (this.failures.get(partition) ?? 0) + 1;
        this.failures.set(partition, n);
        this.log.error({ err, partition, failures: n }, 'task creation failed');
        if (n >= this.o.config.taskFailuresMax) {
          this.log.fatal({ partition, failures: n }, 'taskFailuresMax reached, exiting');
          process.exit(1);
        }
        setTimeout(
          () => {
            if (!this.stopping && this.assigned.has(partition) && !this.tasks.has(partition)) {
              void this.task(partition).catch(() => {});
            }
          },
          Math.min(100 * 2 ** n, failureBackoffMsMax),
        ).unref();
      });
    }
    return t;
  }

  private async createTask(partition: number): Promise<Task> {
    const { o } = this;
    const transactionalId = `${o.transactionalIdPrefix}-${partition}`;
    const producer = o.kafka.producer({
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: o.config.transactionTimeoutMs,
      allowAutoTopicCreation: false,
      createPartitioner: fastDefaultPartitioner,
    });
    await producer.connect();
    // Fence first: initialising the transactional id bumps its epoch, so the previous owner can no longer
    // commit, and its open transaction is aborted (or, if already committing, completed) before we read.
    const fence = await producer.transaction();
    await fence.abort();
    const processor = o.createProcessor(partition);
    let nextOffset = -1n;
    let restored = 0;
    const startedAt = Date.now();
    // The changelogs are restored at the same time: each read joins a consumer group of its own, and a new group
    // waits group.initial.rebalance.delay.ms (3 s on MSK) before its first assignment, so one after the other
    // would add that delay per changelog to the failover time. Records of different stores never interact.
    const reads = await Promise.allSettled(
      processor.changelogTopics.map((topic, i) =>
        restoreChangelogPartition({
          kafka: o.kafka,
          admin: o.admin,
          topic,
          partition,
          logger: this.log,
          apply: (record) => {
            if (i === 0 && record.key === positionKey) {
              if (record.value) nextOffset = BigInt(JSON.parse(record.value.toString()).nextOffset as string);
            } else processor.restore(record);
          },
        }),
      ),
    );
    for (const r of reads) {
      if (r.status === 'rejected') {
        await producer.disconnect().catch(() => {});
        throw r.reason;
      }
      restored += r.value;
    }
    processor.restored();
    this.metrics.restores.inc({ stage: o.stage });
    this.metrics.restoredRecords.inc({ stage: o.stage }, restored);
    this.metrics.tasks.set({ stage: o.stage }, this.tasks.size);
    this.log.info(
      { partition, transactionalId, restored, nextOffset: String(nextOffset), ms: Date.now() - startedAt },
      'task created: producer fenced, state restored',
    );
    return {
      partition,
      producer,
      processor,
      nextOffset,
      lastRecordAtMs: Date.now(),
      queue: Promise.resolve(),
      closed: false,
    };
  }

  private async closeTask(partition: number, why: string): Promise<void> {
    const t = this.tasks.get(partition);
    if (!t) return;
    this.tasks.delete(partition);
    this.metrics.tasks.set({ stage: this.o.stage }, this.tasks.size);
    try {
      const task = await t;
      task.closed = true;
      await task.queue.catch(() => {});
      await task.producer.disconnect();
      this.log.info({ partition, why }, 'task closed');
    } catch {
      // creation failed: nothing to close
    }
  }

  private run(task: Task, fn: () => Promise<void>): Promise<void> {
    const next = task.queue.then(fn);
    task.queue = next.catch(() => {});
    return next;
  }

  /**
   * End offsets of the barrier topic read no earlier than `fetchedAt` (the fetch response that delivered the
   * batch): every record appended before the batch's records is below them. One read serves every batch of
   * the same fetch round.
   */
  private barrierOffsets(topic: string, fetchedAt: number): Promise<PartitionOffsets[]> {
    const r = this.barrierRead;
    if (r && r.startedAt >= fetchedAt) return r.offsets;
    const startedAt = performance.now();
    const offsets = topicOffsets(this.o.admin, topic);
    this.barrierRead = { startedAt, offsets };
    offsets.catch(() => {
      if (this.barrierRead?.offsets === offsets) this.barrierRead = undefined;
    });
    return offsets;
  }

  private async onBatch({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
    const { partition } = batch;
    const barrier = this.o.readBarrier;
    // Started before anything else waits; awaited (and its failure handled) before the batch is processed.
    const barrierHighs = barrier ? this.barrierOffsets(barrier.topic, this.lastFetchAt) : undefined;
    barrierHighs?.catch(() => {});
    let task: Task;
    try {
      task = await this.task(partition);
    } catch (err) {
      await this.failed(partition, err);
      return;
    }
    if (task.closed) return;
    let rebalancing: unknown;
    try {
      await this.run(task, async () => {
        const { o } = this;
        const todo = batch.messages.filter((m) => BigInt(m.offset) >= task.nextOffset);
        if (barrier && barrierHighs && todo.length > 0) await barrier.waitFor(await barrierHighs, barrier.timeoutMs);
        for (let from = 0; from < todo.length; from += o.config.commitRecordsMax) {
          const chunk = todo.slice(from, from + o.config.commitRecordsMax);
          const last = chunk[chunk.length - 1];
          invariant(last, 'a chunk has records');
          const next = BigInt(last.offset) + 1n;
          invariant(next > task.nextOffset, 'a task never commits an offset before the one it committed last');
          const out = new RecordCollector(this.deadLetterRoute(task.partition));
          await task.processor.process(chunk, out);
          task.processor.flush(Date.now(), out);
          await this.commit(task, out, next);
          task.nextOffset = next;
          resolveOffset(last.offset);
          this.metrics.records.inc({ stage: o.stage }, chunk.length);
          try {
            await heartbeat();
          } catch (err) {
            // The group is rebalancing: what is committed stays committed; hand the error to KafkaJS to rejoin.
            rebalancing = err;
            break;
          }
        }
        if (todo.length === 0) {
          const last = batch.messages[batch.messages.length - 1];
          if (last) resolveOffset(last.offset); // already in the committed state (a previous owner did them)
        }
        task.lastRecordAtMs = Date.now();
        this.failures.delete(partition);
      });
    } catch (err) {
      await this.failed(partition, err);
      return;
    }
    if (rebalancing) throw rebalancing;
  }

  private deadLetterRoute(partition: number): DeadLetterRoute | undefined {
    const { o } = this;
    if (o.deadLetterTopic === undefined) return undefined;
    return {
      topic: o.deadLetterTopic,
      sourceTopic: o.inputTopic,
      sourcePartition: partition,
      consumer: o.groupId,
      counted: (reason) => this.metrics.deadLetters.inc({ topic: o.inputTopic, reason }),
    };
  }

  private async commit(task: Task, out: RecordCollector, nextOffset: bigint | undefined): Promise<void> {
    const { o } = this;
    const [store] = task.processor.changelogTopics;
    if (nextOffset !== undefined && store) {
      out.send(store, positionKey, Buffer.from(JSON.stringify({ nextOffset: String(nextOffset) })), task.partition);
    }
    if (out.size === 0 && nextOffset === undefined) return;
    const end = this.metrics.commitSeconds.startTimer({ stage: o.stage });
    const txn = await task.producer.transaction();
    try {
      // One produce request per partition (see PartitionBatch: KafkaJS loses or repeats records of a send that
      // spans brokers when one fails) and per sendBatchRecordsMax records (KafkaJS groups a send's records in
      // O(n²) of the records per partition); partitions in parallel, a partition's requests in order.
      const batches = out.partitionBatches(await this.partitionCounts(out.topics()), sendBatchRecordsMax);
      await Promise.all(batches.map((partitionBatches) => this.sendInOrder(txn, partitionBatches)));
      if (nextOffset !== undefined) {
        await txn.sendOffsets({
          consumerGroupId: o.groupId,
          topics: [{ topic: o.inputTopic, partitions: [{ partition: task.partition, offset: String(nextOffset) }] }],
        });
      }
      await txn.commit();
    } catch (err) {
      await txn.abort().catch(() => {});
      throw err;
    }
    end();
    this.metrics.commits.inc({ stage: o.stage });
  }

  /** One partition's batches, one produce request each, in order; each must come back acknowledged. */
  private async sendInOrder(txn: Transaction, batches: PartitionBatch[]): Promise<void> {
    for (const { topic, partition, messages } of batches) {
      const acked = await txn.send({ topic, messages, acks: -1, timeout: commitTimeoutMs });
      if (!acked.some((r) => r.topicName === topic && r.partition === partition))
        throw new Error(`the send to ${topic}/${partition} resolved without its acknowledgement`);
    }
  }

  /**
   * Partition counts of the topics, read once per topic per process: partitions are never removed, and adding
   * partitions to a keyed topic moves keys (never done in place: docs/architecture.md §7).
   */
  private async partitionCounts(topics: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const topic of topics) {
      let n = this.partitionCountOf.get(topic);
      if (n === undefined) {
        n = (await this.o.admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions.length ?? 0;
        if (n === 0) throw new Error(`topic ${topic} has no partitions in the metadata`);
        this.partitionCountOf.set(topic, n);
      }
      counts.set(topic, n);
    }
    return counts;
  }

  /** A failed task is thrown away and rebuilt from its changelog on the next batch. */
  private async failed(partition: number, err: unknown): Promise<void> {
    if (err instanceof InvariantError) {
      this.log.fatal({ err, partition }, 'invariant broken, exiting');
      process.exit(1);
    }
    this.metrics.commitFailures.inc({ stage: this.o.stage });
    const n = (this.failures.get(partition) ?? 0) + 1;
    this.failures.set(partition, n);
    this.log.warn({ err, partition, failures: n }, 'task failed: aborting, rebuilding from changelog');
    await this.closeTask(partition, 'failed');
    if (n >= this.o.config.taskFailuresMax) {
      this.log.fatal({ partition, failures: n }, 'taskFailuresMax reached, exiting');
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** n, failureBackoffMsMax)));
  }

  private punctuateAll(): void {
    if (this.stopping) return;
    const now = Date.now();
    // One read of the input's end offsets per round, shared by the tasks that need it, and only if one does.
    let endOffsets: Promise<PartitionOffsets[]> | undefined;
    const ends = () => {
      endOffsets ??= topicOffsets(this.o.admin, this.o.inputTopic);
      return endOffsets;
    };
    for (const [partition, t] of this.tasks) {
      void t.then(
        (task) => {
          if (task.closed) return;
          return this.run(task, async () => {
            if (task.closed) return;
            // Idle (the processor may advance its watermark on the clock, and so finalise polls) only if the input
            // partition is at its end now, read after `now`: every record appended before `now` is then processed.
            // The lag seen at the last fetch is not enough: a consumer that stopped fetching for a while (a broker
            // failure, a slow rebalance) still looked caught up, and a poll was finalised before votes acknowledged
            // before its close were processed (found by the broker-fault test: the last voters told 202 were
            // decided POLL_CLOSED).
            const idle =
              now - task.lastRecordAtMs >= this.o.config.idleTimeoutMs && (await this.reachedEnd(task, ends));
            const out = new RecordCollector();
            task.processor.punctuate(now, idle, out);
            if (out.size > 0) await this.commit(task, out, undefined);
          }).catch((err: unknown) => this.failed(partition, err));
        },
        () => {}, // creation failures are logged by task() and retried on the next batch
      );
    }
  }

  /** Is the task's input partition empty past its position (offsets read by `ends`, after the caller's clock)? */
  private async reachedEnd(task: Task, ends: () => Promise<PartitionOffsets[]>): Promise<boolean> {
    const p = (await ends()).find((x) => x.partition === task.partition);
    if (!p) return false;
    return p.high <= (task.nextOffset < 0n ? p.low : task.nextOffset);
  }
}
