import type { LiveSeries, SeriesWindow } from '@votestream/read-models';
import type { WindowCounts } from '@votestream/schemas';

/**
 * One poll's per-window series, merged from every TallyUpdate (each carries only the windows it changed,
 * as absolute counts). A window keeps the counts of the newest version that wrote it, so replays and
 * out-of-order updates cannot move it back. At most `windowsMax` windows: the oldest are dropped.
 */
export class SeriesState {
  private readonly windows = new Map<number, { window: SeriesWindow; version: number }>();
  version = 0;

  constructor(
    readonly pollId: string,
    private readonly windowsMax: number,
  ) {}

  /** Seed from the series stored in Redis (after a restart): its windows count as written at its version. */
  seed(series: LiveSeries): void {
    for (const w of series.windows) this.put(Date.parse(w.windowStart), w, series.version);
    this.version = Math.max(this.version, series.version);
  }

  apply(version: number, windows: readonly WindowCounts[]): void {
    for (const w of windows) {
      let total = 0;
      for (const n of Object.values(w.counts)) total += n;
      this.put(
        w.windowStart,
        {
          windowStart: new Date(w.windowStart).toISOString(),
          windowEnd: new Date(w.windowEnd).toISOString(),
          counts: { ...w.counts },
          total,
          late: w.late,
        },
        version,
      );
    }
    this.version = Math.max(this.version, version);
  }

  private put(start: number, window: SeriesWindow, version: number): void {
    const cur = this.windows.get(start);
    if (cur && cur.version >= version) return;
    this.windows.set(start, { window, version });
    if (this.windows.size > this.windowsMax) {
      let oldest = Number.POSITIVE_INFINITY;
      for (const k of this.windows.keys()) if (k < oldest) oldest = k;
      this.windows.delete(oldest);
    }
  }

  snapshot(version: number, asOf: string, final: boolean): LiveSeries {
    const windows = [...this.windows.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v.window);
    return { pollId: this.pollId, version, windows, asOf, final };
  }
}
