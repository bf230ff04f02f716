import { exportConsumerLag, type Logger, type TransactionalProducers } from '@votestream/runtime';
import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { StreamConfig } from '../config.ts';
import type { DeadLetterRoute } from './collector.ts';
import { type FatalHandler, recoveryOf } from './errors.ts';
import { StreamMetrics } from './metrics.ts';
import { type PartitionOffsets, topicOffsets } from './offsets.ts';
import { PartitionCounts } from './partitions.ts';
import { type Clock, type ProcessorFactory, systemClock } from './processor.ts';
import { restoreChangelogs } from './restore.ts';
import type { StreamTask } from './task.ts';
import { TaskManager, type TaskReport } from './task-manager.ts';

export interface StreamThreadOptions {
  /** Stage name, for logs and metrics. */
  stage: string;
  kafka: Kafka;
  /** The tasks' transactional producer client (STREAM_KAFKA_CLIENT); absent: KafkaJS on `kafka`. */
  producers?: TransactionalProducers | undefined;
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
  /** Gets every error the runtime cannot recover from (main.ts logs it and exits; the supervisor restarts). */
  onFatal: FatalHandler;
  /** Processing time for the processors' flush and punctuate; default the wall clock. */
  clock?: Clock;
  /** A state the tasks read that is fed by another topic and must be caught up before a batch is processed. */
  readBarrier?: ReadBarrier;
  /** Where records the processors cannot decode go (in the task's transaction); absent: they fail the task. */
  deadLetterTopic?: string;
  /**
   * The consumer's fetch, for a stage off the vote-to-screen path: the broker answers once `minBytes` are there or
   * `maxWaitMs` passed, so each task commits fewer, larger transactions. Absent: `STREAM_FETCH_MAX_WAIT_MS`, 1 byte.
   */
  fetch?: { maxWaitMs: number; minBytes: number };
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

/**
 * One stage of the topology (Kafka Streams' StreamThread): the consumer of the stage's input topic, which hands
 * each fetched batch to the partition's task (TaskManager -> StreamTask), reads the barrier topic's end offsets
 * per fetch round, and punctuates the tasks every punctuateIntervalMs.
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
  private readonly tasks: TaskManager;
  private readonly log: Logger;
  private readonly clock: Clock;
  private punctuator: NodeJS.Timeout | undefined;
  private stopping = false;
  /** performance.now() of the latest fetch response (KafkaJS emits FETCH before handing out its batches). */
  private lastFetchAt = 0;
  /** The latest end-offsets read of the barrier topic and when it was started. */
  private barrierRead: { startedAt: number; offsets: Promise<PartitionOffsets[]> } | undefined;

  constructor(private readonly o: StreamThreadOptions) {
    const metrics = new StreamMetrics(o.registry);
    this.log = o.logger.child({ stage: o.stage });
    this.clock = o.clock ?? systemClock;
    this.tasks = new TaskManager({
      ctx: {
        stage: o.stage,
        config: o.config,
        logger: this.log,
        metrics,
        clock: this.clock,
        deadLetterRoute: (partition) => this.deadLetterRoute(partition, metrics),
        restoreChangelogs: (topics, partition, apply) =>
          restoreChangelogs({
            kafka: o.kafka,
            admin: o.admin,
            partitions: topics.map((topic) => ({ topic, partition })),
            logger: this.log,
            apply,
          }),
      },
      kafka: o.kafka,
      producers: o.producers,
      inputTopic: o.inputTopic,
      transactionTimeoutMs: o.config.transactionTimeoutMs,
      taskFailuresMax: o.config.taskFailuresMax,
      partitionCounts: new PartitionCounts(o.admin),
      groupId: o.groupId,
      transactionalIdPrefix: o.transactionalIdPrefix,
      createProcessor: o.createProcessor,
      onFatal: o.onFatal,
    });
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      sessionTimeout: o.config.sessionTimeoutMs,
      heartbeatInterval: o.config.heartbeatIntervalMs,
      rebalanceTimeout: o.config.rebalanceTimeoutMs,
      maxWaitTimeInMs: o.fetch?.maxWaitMs ?? o.config.fetchMaxWaitMs,
      minBytes: o.fetch?.minBytes ?? 1,
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
      this.log.info({ partitions, memberId: payload.memberId }, 'partitions assigned');
      this.tasks.assign(partitions);
    });
    consumer.on(consumer.events.FETCH, () => {
      this.lastFetchAt = performance.now();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
      if (recoveryOf(payload.error) === 'fatal' || !payload.restart) o.onFatal(payload.error);
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
    await this.tasks.stop();
  }

  /** The tasks of this stage and their states (reported by /readyz). */
  taskStates(): TaskReport[] {
    return this.tasks.report();
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
    let task: StreamTask;
    try {
      task = await this.tasks.task(partition);
    } catch (err) {
      await this.tasks.failed(partition, err);
      return;
    }
    if (task.state !== 'running') return;
    let rebalancing: unknown;
    try {
      rebalancing = await task.processBatch({
        messages: batch.messages,
        resolveOffset,
        heartbeat,
        ...(barrier && barrierHighs
          ? { barrier: async () => barrier.waitFor(await barrierHighs, barrier.timeoutMs) }
          : {}),
      });
      this.tasks.succeeded(partition);
    } catch (err) {
      await this.tasks.failed(partition, err);
      return;
    }
    // The group is rebalancing: what is committed stays committed; hand the error to KafkaJS to rejoin.
    if (rebalancing) throw rebalancing;
  }

  private deadLetterRoute(partition: number, metrics: StreamMetrics): DeadLetterRoute | undefined {
    const { o } = this;
    if (o.deadLetterTopic === undefined) return undefined;
    return {
      topic: o.deadLetterTopic,
      sourceTopic: o.inputTopic,
      sourcePartition: partition,
      consumer: o.groupId,
      counted: (reason) => metrics.deadLetters.inc({ topic: o.inputTopic, reason }),
    };
  }

  private punctuateAll(): void {
    if (this.stopping) return;
    const now = this.clock();
    // One read of the input's end offsets per round, shared by the tasks that need it, and only if one does.
    let endOffsets: Promise<PartitionOffsets[]> | undefined;
    const ends = () => {
      endOffsets ??= topicOffsets(this.o.admin, this.o.inputTopic);
      return endOffsets;
    };
    for (const task of this.tasks.running()) {
      task
        .punctuate(now, async (nextOffset) => {
          const p = (await ends()).find((x) => x.partition === task.partition);
          return p !== undefined && p.high <= (nextOffset < 0n ? p.low : nextOffset);
        })
        .catch((err: unknown) => this.tasks.failed(task.partition, err));
    }
  }
}
