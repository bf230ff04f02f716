import { deadLetterCounter } from '@votestream/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The runtime's metrics, labelled by stage; registered once per registry (several stages share one). */
export class StreamMetrics {
  readonly records: Counter;
  readonly commits: Counter;
  readonly commitFailures: Counter;
  readonly commitSeconds: Histogram;
  readonly restores: Counter;
  readonly restoredRecords: Counter;
  readonly tasks: Gauge;
  readonly taskClosures: Counter<'stage' | 'why'>;
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
    this.taskClosures = get(
      'stream_task_closures_total',
      () =>
        new Counter({
          name: 'stream_task_closures_total',
          help: 'Tasks closed, by why: revoked (rebalance), failed (transaction failed, rebuilt), fenced (a newer owner has the partition), shutdown',
          labelNames: ['stage', 'why'],
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
