// Test-only fault injection. These variables are read here and nowhere else: they are not part of StreamConfig,
// no deployment (compose, helm, terraform) sets them, and docs/configuration.md lists them as test-only.

/** Each fetched polls batch reaches the catalog this much later (a slow catalog fetch, a GC pause); tests only. */
const catalogApplyDelayMsMax = 10_000;

/**
 * `STREAM_TEST_CATALOG_APPLY_DELAY_MS` (0..10000, unset in production): stream/test/close-barrier.test.ts sets it
 * to show the read barrier holds when the catalog is slower than the vote batch.
 */
export function catalogApplyDelay(env: Record<string, string | undefined> = process.env): {
  beforeApply?: () => Promise<void>;
} {
  const raw = env.STREAM_TEST_CATALOG_APPLY_DELAY_MS;
  if (raw === undefined || raw === '' || raw === '0') return {};
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0 || ms > catalogApplyDelayMsMax) {
    throw new Error(`STREAM_TEST_CATALOG_APPLY_DELAY_MS must be an integer 0..${catalogApplyDelayMsMax}, got ${raw}`);
  }
  return { beforeApply: () => new Promise((resolve) => setTimeout(resolve, ms)) };
}
