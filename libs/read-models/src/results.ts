import { invariant, type RedisClient, scanKeys } from '@votestream/runtime';
import { resultsKey } from './keys.ts';
import type { LiveSeries, Results, TallyInput } from './types.ts';

/**
 * Compare-and-set of a poll's results on version, atomic in Redis. Versions are compared as decimal
 * strings (length first, then lexicographically) so the comparison is exact for any 64-bit version,
 * not just the 2^53 a Lua number holds. Returns 1 if written, 0 if the stored version is equal or newer
 * (a replay or a stale update: both are no-ops). ARGV[3], if not empty, is the poll's LiveSeries JSON, written
 * in the same step so the series stored next to a version is the one built up to that version.
 */
export const casResultsLua = `
local cur = redis.call('HGET', KEYS[1], 'version')
local v = ARGV[1]
if cur then
  if #cur > #v or (#cur == #v and cur >= v) then return 0 end
end
redis.call('HSET', KEYS[1], 'version', v, 'json', ARGV[2])
if ARGV[3] and ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'series', ARGV[3]) end
return 1
`;

export const casResultsCommand = 'votestreamCasResults';

type RedisWithCas = RedisClient & {
  [casResultsCommand](key: string, version: string, json: string, series: string): Promise<number>;
};

/** Registers the CAS script on a client once (ioredis sends EVALSHA and loads the script on NOSCRIPT). */
export function withCasResults(redis: RedisClient): RedisWithCas {
  const r = redis as RedisWithCas;
  if (typeof r[casResultsCommand] !== 'function') {
    redis.defineCommand(casResultsCommand, { numberOfKeys: 1, lua: casResultsLua });
  }
  return r;
}

export function versionString(version: number): string {
  invariant(
    Number.isSafeInteger(version) && version >= 0,
    `tally version must be a non-negative safe integer, got ${version}`,
  );
  return String(version);
}

export function resultsFromTally(t: TallyInput): Results {
  return {
    pollId: t.pollId,
    totals: { ...t.totals },
    total: t.total,
    version: t.version,
    asOf: new Date(t.asOf).toISOString(),
    final: t.final,
    // Only the final results carry the checkpoint: one head per partition is too much for every live update.
    ...(t.final && t.audit ? { audit: t.audit } : {}),
  };
}

/** Newest of the candidates by version (the first wins a tie); null if all are null. */
export function newest(...candidates: (Results | null | undefined)[]): Results | null {
  let best: Results | null = null;
  for (const c of candidates) if (c && (!best || c.version > best.version)) best = c;
  return best;
}

export function parseResults(json: string): Results {
  const r = JSON.parse(json) as Results;
  invariant(typeof r.pollId === 'string' && typeof r.version === 'number', 'malformed results in Redis');
  return r;
}

/**
 * Writes many polls' results: one CAS script per poll, all sent at once (in flight together on the connection,
 * not a MULTI and not an ioredis pipeline: a cluster refuses a pipeline whose keys live in different slots, and
 * each poll's key has its own `{pollId}` slot). Returns, per input, whether it was newer than what Redis held.
 */
export async function casResultsBatch(
  redis: RedisClient,
  redisPrefix: string,
  results: readonly Results[],
  series?: readonly (LiveSeries | null)[],
): Promise<boolean[]> {
  if (results.length === 0) return [];
  invariant(series === undefined || series.length === results.length, 'one series (or null) per results');
  const r = withCasResults(redis);
  const replies = await Promise.all(
    results.map((res, i) => {
      const s = series?.[i] ?? null;
      invariant(s === null || (s.pollId === res.pollId && s.version === res.version), 'series must match its results');
      return r[casResultsCommand](
        resultsKey(redisPrefix, res.pollId),
        versionString(res.version),
        JSON.stringify(res),
        s === null ? '' : JSON.stringify(s),
      );
    }),
  );
  return replies.map((written) => written === 1);
}

export function parseSeries(json: string): LiveSeries {
  const s = JSON.parse(json) as LiveSeries;
  invariant(typeof s.pollId === 'string' && Array.isArray(s.windows), 'malformed series in Redis');
  return s;
}

/** Upper bound on polls one scanLatest call returns (a start-up republish, not a hot path). */
export const scanPollsMax = 100_000;

/**
 * The latest results and series of every poll in Redis under the prefix (SCAN, never KEYS; on every master
 * of a cluster). The HMGETs of a batch go out together as separate commands: their keys are in many slots.
 */
export async function scanLatest(
  redis: RedisClient,
  redisPrefix: string,
): Promise<{ results: Results; series: LiveSeries | null }[]> {
  const out: { results: Results; series: LiveSeries | null }[] = [];
  for await (const keys of scanKeys(redis, `${redisPrefix}results:{*}`)) {
    const replies = await Promise.all(keys.map((key) => redis.hmget(key, 'json', 'series')));
    for (const [json = null, series = null] of replies) {
      if (json === null) continue;
      invariant(out.length < scanPollsMax, `more than ${scanPollsMax} polls in Redis under ${redisPrefix}`);
      out.push({ results: parseResults(json), series: series ? parseSeries(series) : null });
    }
  }
  return out;
}
