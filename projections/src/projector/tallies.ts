import type { LiveSeries, ReadModelWriter, Results } from '@votestream/read-models';
import { parseSeries, resultsFromTally, resultsKey } from '@votestream/read-models';
import { invariant, type RedisClient } from '@votestream/runtime';
import type { TallyUpdate } from '@votestream/schemas';
import type { Counter, Histogram } from 'prom-client';
import type { LivePublisher } from '../live/publisher.ts';
import { SeriesState } from '../live/series.ts';

export interface TallyProjectorMetrics {
  staleResults: Counter;
  writeSeconds: Histogram<'model'>;
}

/**
 * Projects the global `tallies` topic (read_committed) into the results read model (Redis, CAS on version)
 * and the live MQTT topics. One batch: keep the newest tally per poll and merge every tally's windows into the
 * poll's series, send the Redis writes (one CAS script per poll, sent together), offer to the live publisher,
 * await the writes. Consuming,
 * retries and the offset commit after it are the at-least-once loop's (`AtLeastOnceLoop` in libs/runtime); every
 * write is idempotent, so a retry, a crash or a replay leaves the same state.
 */
export class TallyProjector {
  private readonly series = new Map<string, SeriesState>();

  constructor(
    private readonly opts: {
      writer: ReadModelWriter;
      redis: RedisClient;
      redisPrefix: string;
      publisher: LivePublisher;
      seriesWindowsMax: number;
      /** Polls whose series is kept in memory; beyond it the least recently updated is dropped (reloaded from Redis). */
      seriesPollsMax: number;
      metrics: TallyProjectorMetrics;
    },
  ) {}

  /** One batch of decoded tallies, in offset order. */
  async apply(batch: TallyUpdate[]): Promise<void> {
    const { metrics, writer } = this.opts;
    const newestByPoll = new Map<string, TallyUpdate>();
    const seriesTouched = new Set<string>();
    for (const t of batch) {
      invariant(t.source === -1, `tallies carries global tallies only (source -1), got source ${t.source}`);
      const cur = newestByPoll.get(t.pollId);
      if (!cur || t.version > cur.version) newestByPoll.set(t.pollId, t);
    }
    await this.loadSeries([...newestByPoll.keys()]);
    for (const t of batch) {
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
    // write throws below: the loop retries the batch, which is written and offered again.
    results.forEach((r, i) => {
      this.opts.publisher.offer(r, series[i] ?? null);
    });
    const written = await writing;
    stop();
    for (const w of written) if (!w) metrics.staleResults.inc();
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
