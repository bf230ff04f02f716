import type { KafkaMessage } from 'kafkajs';
import type { RecordCollector } from './collector.ts';
import type { ChangelogRecord } from './restore.ts';

/**
 * The processing logic of one task (one input partition), as the runtime sees it. The runtime owns the
 * transaction: everything a processor sends to the collector during `process`, `flush` and `punctuate` is
 * committed atomically with the consumer offsets, or not at all.
 */
export interface TaskProcessor {
  /** The changelog topics of this task's state stores; partition = the task's input partition. */
  readonly changelogTopics: readonly string[];
  /**
   * The changelog (one of `changelogTopics`) where the runtime keeps the task's position (`taskPosition` in
   * changelog.ts, a key reserved for the runtime): declared by the processor, so its store codec knows the key.
   */
  readonly positionChangelog: string;
  /** Applies one changelog record while the task restores (before it processes anything); never the position. */
  restore(record: ChangelogRecord): void;
  /** Called once after every changelog is restored. */
  restored(): void;
  /** Processes input records in offset order, mutating state; decisions and outputs go to `out`. */
  process(messages: readonly KafkaMessage[], out: RecordCollector): Promise<void>;
  /** Writes the state changes since the last flush to the changelogs, and the derived outputs. */
  flush(nowMs: number, out: RecordCollector): void;
  /**
   * Processing-time callback every punctuate interval. `idle`: the task has consumed its input to the end and
   * has seen no record for idleTimeoutMs, so the processor may advance its watermark by wall clock.
   */
  punctuate(nowMs: number, idle: boolean, out: RecordCollector): void;
}

export type ProcessorFactory = (partition: number) => TaskProcessor;

/** Processing time, injected: processors never read the wall clock themselves (tests move a fake one). */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
