/**
 * Retry timing: exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"), and Retry-After parsing. Pure functions; the random source is injectable so tests are exact.
 */

export interface RetryPolicy {
  /** First back-off ceiling; attempt n waits uniformly in [0, min(retryDelayMsMax, retryDelayMsBase * 2^n)). */
  retryDelayMsBase: number;
  /** Upper bound of a single back-off wait, and of a server's Retry-After we are willing to honour. */
  retryDelayMsMax: number;
  /** Attempts per castVote/flush of one vote, the first one included. */
  attemptsMax: number;
  /** Wall-clock budget for one castVote/flush of one vote; a wait that would cross it is not started. */
  retryBudgetMs: number;
}

export const defaultRetryPolicy: Readonly<RetryPolicy> = Object.freeze({
  retryDelayMsBase: 250,
  retryDelayMsMax: 15_000,
  attemptsMax: 8,
  retryBudgetMs: 60_000,
});

/**
 * Full-jitter back-off before retry number `retry` (0 for the wait after the first failed attempt).
 * Full jitter spreads a crowd of phones that failed together (one TV moment, one broker blip) over the
 * whole window instead of re-synchronising them into waves.
 */
export function backoffDelayMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  // 2^30 already exceeds any sane cap; clamp the exponent so the multiplication never overflows to Infinity.
  const ceiling = Math.min(policy.retryDelayMsMax, policy.retryDelayMsBase * 2 ** Math.min(retry, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Retry-After (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date. Returns milliseconds from `nowMs`,
 * or null when absent or unparseable (the caller then falls back to its own back-off).
 */
export function parseRetryAfterMs(value: string | null | undefined, nowMs: number): number | null {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (v === '') return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/**
 * The wait before the next attempt: the server's Retry-After when it gave one (never shorter: the server knows
 * its load), otherwise full-jitter back-off; always capped by retryDelayMsMax so a hostile or buggy header
 * cannot park a vote for an hour. A little jitter is added on top of Retry-After so that every client told
 * "1 second" does not come back in the same millisecond.
 */
export function nextDelayMs(
  retry: number,
  retryAfterMs: number | null,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== null) {
    const spread = Math.floor(random() * Math.min(1000, policy.retryDelayMsBase * 4));
    return Math.min(policy.retryDelayMsMax, retryAfterMs + spread);
  }
  return backoffDelayMs(retry, policy, random);
}

/** setTimeout as a promise that an AbortSignal can cut short (rejects with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The one retry rule of every SDK loop (vote delivery, receipt reads): after failed attempt number `attempt`
 * (1-based), the wait before the next one (`nextDelayMs`), or null when the attempts (`attemptsMax`) or the
 * wall-clock budget since `startedAtMs` (`retryBudgetMs`, a wait that would cross it is not started) are spent.
 */
export function retryDelayWithinBudgetMs(
  attempt: number,
  retryAfterMs: number | null,
  timing: { startedAtMs: number; nowMs: number },
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | null {
  if (attempt >= policy.attemptsMax) return null;
  const delayMs = nextDelayMs(attempt - 1, retryAfterMs, policy, random);
  if (timing.nowMs + delayMs - timing.startedAtMs > policy.retryBudgetMs) return null;
  return delayMs;
}
