import { invariant } from '@votestream/runtime';
import type { WindowCounts } from '@votestream/schemas';

/** Counts of one tumbling event-time window: absolute, per option. */
export interface WindowState {
  counts: Record<string, number>;
  late: number;
}

/** A new version for a tally: strictly above the previous one, and close to wall clock in microseconds. */
export function nextVersion(previous: number, nowMs: number): number {
  const v = Math.max(previous + 1, nowMs * 1000);
  invariant(Number.isSafeInteger(v) && v > previous, 'a tally version only increases');
  return v;
}

export function windowStartOf(eventTimeMs: number, windowMs: number): number {
  return eventTimeMs - (((eventTimeMs % windowMs) + windowMs) % windowMs);
}

export function toWindowCounts(start: number, windowMs: number, w: WindowState): WindowCounts {
  return { windowStart: start, windowEnd: start + windowMs, counts: { ...w.counts }, late: w.late };
}

export function sumOf(counts: Record<string, number>): number {
  let n = 0;
  for (const k in counts) n += counts[k] as number;
  return n;
}
