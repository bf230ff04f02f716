import type { LiveSeries, ReadModelWriter, Results } from '@votestream/read-models';
import { parseSeries, resultsFromTally, resultsKey } from '@votestream/read-models';
import { invariant, type Logger, type RedisClient } from '@votestream/runtime';
import type { TallyUpdate } from '@votestream/schemas';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Counter, Histogram } from 'prom-client';
import type { LivePublisher } from '../live/publisher.ts';
import { SeriesState } from '../live/series.ts';

export interface TallyProjectorMetrics {
  records: Counter<'topic'>;
  staleResults: Counter;
  writeSeconds: Histogram<'model'>;
}

/**
 * Projects the global `tallies` topic (read_committed) into the results read model (Redis, CAS on version)
 * and the live MQTT topics. One batch: decode, keep the newest tally per poll and merge every tally's
 * windows into the poll's series, offer to the live publisher, write Redis (one CAS script per poll, sent together), then
 * commit the batch's offsets. A failed write throws before the commit, so the batch is consumed again; every write
 * is idempotent, so a crash or a replay leaves the same state.
 */
export class TallyProjector {
  private readonly series = new Map<string, SeriesState>();

  constructor(
    private readonly opts: {
      consumer: Consumer;
      topic: string;
      /** Decodes a record; null for a poison record it dead-lettered (skipped, committed past). */
      decode: (topic: string, partition: number, message: KafkaMessage) => Promise<TallyUpdate | null>;
      writer: ReadModelWriter;
      redis: RedisClient;
      redisPrefix: string;
      publisher: LivePublisher;
      seriesWindowsMax: number;
      /** Polls whose series is kept in memory; beyond it the least recently updated is dropped (reloaded from Redis). */
      seriesPollsMax: number;
      metrics: TallyProjectorMetrics;
      logger: Logger;
    },
  ) {}

  async start(fromBeginning: boolean): Promise<void> {
    const { consumer, topic } = this.opts;
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const { metrics, writer } = this.opts;
    const newestByPoll = new Map<string, TallyUpdate>();
    const seriesTouched = new Set<string>();
    const pending: TallyUpdate[] = [];
    for (const message of batch.messages) {
      const t = await this.opts.decode(batch.topic, batch.partition, message);
      if (t === null) continue;
      invariant(t.source === -1, `tallies carries global tallies only (source -1), got source ${t.source}`);
      pending.push(t);
      const cur = newestByPoll.get(t.pollId);
      if (!cur || t.version > cur.version) newestByPoll.set(t.pollId, t);
    }
    metrics.records.inc({ topic: 'tallies' }, batch.messages.length);
    await this.loadSeries([...newestByPoll.keys()]);
    for (const t of pending) {
      if (t.windows.length > 0) {
        this.seriesOf(t.pollId).apply(t.version, t.windows);
        seriesTouched.add(t.pollId);
      }
    }
    const tallies = [...newestByPoll.values()];
    const results: Results[] = tallies.map(resultsFromTally);
    const series: (LiveSeries | null)[] = results.map((r) => {
      const s = this.series.get(r.pollId);
      return s ? s.snapshot(r.version, r.asOf, r.final) : null;
    });
    const stop = metrics.writeSeconds.startTimer({ model: 'results' });
    const writing = writer.writeResults(tallies, series);
    writing.catch(() => {}); // awaited below; handled here too in case an offer throws first
    // Live totals without waiting for the Redis write (latency budget, docs/components/projections.md); its
    // commands are sent first. What this consumer reads is committed (read_committed), the publisher publishes a
    // poll's versions strictly increasing and drops anything not newer than it has (so a replay or a restart
    // offers safely even when Redis already holds the version), and subscribers drop versions they have. A failed
    // write throws below: the batch is read, written and offered again.
    results.forEach((r, i) => {
      this.opts.publisher.offer(r, series[i] ?? null);
    });
    const written = await writing;
    stop();
    for (const w of written) if (!w) metrics.staleResults.inc();
    // Offsets only after the writes succeeded (the commit is the next offset to read).
    const last = batch.lastOffset();
    // Resolve too: with eachBatchAutoResolve off, KafkaJS fetches from the last resolved offset, so a batch that
    // is only committed is fetched and processed again, forever.
    resolveOffset(last);
    await this.opts.consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
    ]);
    await heartbeat();
  }

  private seriesOf(pollId: string): SeriesState {
    let s = this.series.get(pollId);
    if (!s) {
      s = new SeriesState(pollId, this.opts.seriesWindowsMax);
      this.series.set(pollId, s);
    } else {
      this.series.delete(pollId); // keep Map order = least recently updated first
      this.series.set(pollId, s);
    }
    while (this.series.size > this.opts.seriesPollsMax) {
      const oldest = this.series.keys().next().value;
      if (oldest === undefined) break;
      this.series.delete(oldest);
    }
    return s;
  }

  /** Seeds the series of polls this process has not seen yet from Redis (after a restart or an eviction). */
  private async loadSeries(pollIds: string[]): Promise<void> {
    const missing = pollIds.filter((id) => !this.series.has(id));
    if (missing.length === 0) return;
    // Separate commands sent together, not a pipeline: each poll's key is in its own cluster slot.
    const replies = await Promise.all(
      missing.map((id) => this.opts.redis.hget(resultsKey(this.opts.redisPrefix, id), 'series')),
    );
    missing.forEach((id, i) => {
      const json = replies[i];
      if (typeof json === 'string' && json !== '') this.seriesOf(id).seed(parseSeries(json));
    });
  }
}
