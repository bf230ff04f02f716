// TaskDriver: a stream task without Kafka, in the spirit of Kafka Streams' TopologyTestDriver. It runs the real
// StreamTask (state machine, position handling, commit per commitRecordsMax records) around a processor, with
// in-memory "topics" instead of a broker: records piped in get offsets, every committed transaction appends its
// records to the output topics and changelogs, and a new task can be restored from those changelogs. Time is a
// ManualClock the test moves. For unit tests of processors; the guarantees themselves (transactions, fencing,
// restore over Kafka) are proven by the integration tests against the real stack.
import { createLogger } from '@votestream/runtime';
import type { KafkaMessage } from 'kafkajs';
import { Registry } from 'prom-client';
import type { DeadLetterRoute, RecordCollector } from '../runtime/collector.ts';
import { StreamMetrics } from '../runtime/metrics.ts';
import type { TaskProcessor } from '../runtime/processor.ts';
import type { ChangelogRecord } from '../runtime/restore.ts';
import { StreamTask, type TaskContext, type TaskTransactions } from '../runtime/task.ts';

/** Processing time the test moves by hand. */
export class ManualClock {
  constructor(private nowMs: number) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    if (ms < 0) throw new Error('a clock never goes back');
    this.nowMs += ms;
  }
}

/** One committed record of an output topic or changelog. */
export interface DriverRecord {
  topic: string;
  partition: number | undefined;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** A record to pipe into the task's input partition. */
export interface InputRecord {
  key?: string | null;
  value: Buffer | null;
}

export interface TaskDriverOptions {
  /** The task's input partition. */
  partition?: number;
  clock: ManualClock;
  /** Records per transaction at most (default 5000, as STREAM_COMMIT_RECORDS_MAX). */
  commitRecordsMax?: number;
  /** Idle time after which punctuate() calls the task idle (default 3000, as STREAM_IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Dead-letter topic of the stage; absent: poison records fail the batch. */
  deadLetterTopic?: string;
  /** Committed records to start from (a previous driver's `log()`): the new task restores its changelogs from them. */
  log?: readonly DriverRecord[];
}

export class TaskDriver {
  readonly partition: number;
  private readonly committed: DriverRecord[];
  private readonly task: StreamTask;
  private nextInputOffset = 0n;
  /** Transactions committed, and how many of them moved the input offsets. */
  commits = 0;
  /** The input offset the last offset-moving transaction committed (what the group would restart from). */
  committedOffset: bigint | undefined;
  /** Set: the next commit fails (after sending), so the transaction aborts and nothing of it is committed. */
  failNextCommit: Error | undefined;

  private constructor(
    readonly processor: TaskProcessor,
    private readonly o: TaskDriverOptions,
  ) {
    this.partition = o.partition ?? 0;
    this.committed = [...(o.log ?? [])];
    const deadLetterTopic = o.deadLetterTopic;
    const ctx: TaskContext = {
      stage: 'driver',
      config: { commitRecordsMax: o.commitRecordsMax ?? 5000, idleTimeoutMs: o.idleTimeoutMs ?? 3000 },
      logger: createLogger('task-driver', 'silent'),
      metrics: new StreamMetrics(new Registry()),
      clock: o.clock.now,
      deadLetterRoute: (partition): DeadLetterRoute | undefined =>
        deadLetterTopic === undefined
          ? undefined
          : {
              topic: deadLetterTopic,
              sourceTopic: 'input',
              sourcePartition: partition,
              consumer: 'driver',
              counted() {},
            },
      restoreChangelogs: async (topics, partition, apply: (r: ChangelogRecord) => void) => {
        let n = 0;
        for (const r of this.committed) {
          if (!topics.includes(r.topic) || r.partition !== partition) continue;
          apply({ topic: r.topic, partition, key: Buffer.from(r.key ?? ''), value: r.value });
          n++;
        }
        return n;
      },
    };
    const transactions: TaskTransactions = {
      fence: async () => {},
      disconnect: async () => {},
      commit: async (out: RecordCollector, nextOffset: bigint | undefined) => {
        const failure = this.failNextCommit;
        this.failNextCommit = undefined;
        if (failure) throw failure; // aborted: none of `out` is committed
        // Output topics have one partition here (commit order kept); changelog records keep their explicit partition.
        const counts = new Map(out.topics().map((topic) => [topic, 1]));
        for (const batches of out.partitionBatches(counts, Number.MAX_SAFE_INTEGER)) {
          for (const { topic, partition, messages } of batches) {
            for (const m of messages) {
              const headers: Record<string, string> = {};
              for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = String(v);
              this.committed.push({
                topic,
                partition,
                key: m.key === null || m.key === undefined ? null : String(m.key),
                value: m.value === null || m.value === undefined ? null : Buffer.from(m.value),
                headers,
              });
            }
          }
        }
        this.commits++;
        if (nextOffset !== undefined) this.committedOffset = nextOffset;
      },
    };
    this.task = new StreamTask(this.partition, ctx, transactions, processor);
  }

  /** A driver whose task is created and restored (from `options.log` if given) and running. */
  static async create(processor: TaskProcessor, options: TaskDriverOptions): Promise<TaskDriver> {
    const driver = new TaskDriver(processor, options);
    await driver.task.initialize();
    driver.nextInputOffset = driver.task.position < 0n ? 0n : driver.task.position;
    return driver;
  }

  /** The task's state machine state. */
  get state() {
    return this.task.state;
  }

  /** The restored or committed position: the next input offset the task will process. */
  get position(): bigint {
    return this.task.position;
  }

  /**
   * Appends records to the input partition and hands them to the task as one fetched batch (processed in
   * transactions of at most commitRecordsMax records, each committed here). Rejects as the real batch would.
   */
  async pipe(records: readonly InputRecord[]): Promise<void> {
    const messages: KafkaMessage[] = records.map((r) => {
      const offset = String(this.nextInputOffset++);
      return {
        offset,
        key: r.key === null || r.key === undefined ? null : Buffer.from(r.key),
        value: r.value,
        timestamp: String(this.o.clock.now()),
        attributes: 0,
        headers: {},
      };
    });
    await this.task.processBatch({
      messages,
      resolveOffset: () => {},
      heartbeat: async () => {},
    });
  }

  /** One punctuation at the clock's time; the input is always at its end here, so idle = no record for idleTimeoutMs. */
  punctuate(): Promise<void> {
    return this.task.punctuate(this.o.clock.now(), async () => true);
  }

  /** Every committed record, in commit order (give it to a new driver as `log` to restore from it). */
  log(): readonly DriverRecord[] {
    return this.committed;
  }

  /** The committed records of an output topic, in commit order. */
  output(topic: string): DriverRecord[] {
    return this.committed.filter((r) => r.topic === topic);
  }

  /** A changelog as compaction would leave it: the latest value per key (tombstones removed). */
  changelog(topic: string): Map<string, Buffer> {
    const latest = new Map<string, Buffer | null>();
    for (const r of this.committed)
      if (r.topic === topic && r.partition === this.partition) latest.set(r.key ?? '', r.value);
    const out = new Map<string, Buffer>();
    for (const [k, v] of latest) if (v !== null) out.set(k, v);
    return out;
  }

  close(): Promise<void> {
    return this.task.close();
  }
}
