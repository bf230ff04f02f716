import { invariant, type RedisClient } from '@votestream/runtime';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ProblemError } from '../http/problem.ts';

/**
 * Two fixed-window limiters in Redis, shared by the whole fleet: per voter and per network prefix. Each is
 * one atomic script on one key (rate-limiter-flexible's `rlflxIncr`: SET NX EX, INCRBY, PTTL, EXPIRE if it
 * had none), so a Redis Cluster runs each on its key's slot; keys `<prefix>rl:voter:<voterId>` and
 * `<prefix>rl:net:<prefix>`. The vote path calls the script directly (one EVALSHA per limiter, auto-pipelined
 * with the other requests' commands) instead of through RateLimiterRedis, whose promise and result objects
 * cost more than the command itself. Each limiter has an in-memory insurance limiter (rate-limiter-flexible's
 * RateLimiterMemory) that takes over while Redis is not ready or a command fails; its budget is the fleet
 * budget divided by `fleetSize` (RATE_FALLBACK_FLEET_SIZE: the autoscaler's maximum in production), because each
 * instance then only sees its own share of the traffic and the fleet together must not allow more than one Redis
 * limiter would. Anything else that goes wrong (the insurance limiter failing, Redis answering something that is
 * not a counter) fails closed: 503 unavailable, never a request let through unlimited.
 */
export interface RateLimits {
  /** Resolves to 0 when allowed, or the seconds after which to retry. */
  consume(voterId: string, networkPrefix: string): Promise<number>;
}

/** Fixed window: the first hit of a window creates the counter with the window's TTL. Returns {count, pttl}. */
const fixedWindowLua = `
redis.call('SET', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local consumed = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  ttl = 1000 * ARGV[2]
end
return {consumed, ttl}
`;

type LimiterRedis = RedisClient & {
  vsFixedWindow(key: string, points: number, durationS: number): Promise<[number, number]>;
};

/** The fixed-window counter script on `redis` (defined once per client): resolves [count after this hit, ms left]. */
export function fixedWindowCounter(redis: RedisClient): (key: string, durationS: number) => Promise<[number, number]> {
  const r = redis as LimiterRedis;
  if (typeof r.vsFixedWindow !== 'function') r.defineCommand('vsFixedWindow', { numberOfKeys: 1, lua: fixedWindowLua });
  return (key, durationS) => r.vsFixedWindow(key, 1, durationS);
}

const limiterFault = () => new ProblemError('unavailable', 'the rate limiter cannot decide', undefined, 1);

/** One fixed-window limit: `(key) => seconds to wait`, 0 when allowed. In Redis, with the in-memory insurance. */
export type KeyedLimit = (key: string) => Promise<number>;

export function createKeyedLimit(opts: {
  redis: RedisClient;
  /** Redis keys are `<keyPrefix>rl:<name>:<key>`. */
  keyPrefix: string;
  name: string;
  points: number;
  durationS: number;
  /** Instances sharing the budget while Redis is unreachable (each gets 1/fleetSize of it). */
  fleetSize: number;
}): KeyedLimit {
  const { redis, name, points, durationS, fleetSize } = opts;
  invariant(Number.isInteger(durationS) && durationS >= 1, 'rate limit windows are whole seconds >= 1');
  invariant(Number.isInteger(points) && points >= 1, 'rate limits >= 1');
  invariant(Number.isInteger(fleetSize) && fleetSize >= 1, 'fleetSize is an integer >= 1');
  const count = fixedWindowCounter(redis);
  const keyPrefix = `${opts.keyPrefix}rl:${name}:`;
  const insurance = new RateLimiterMemory({
    keyPrefix: `${name}-insurance`,
    points: Math.max(1, Math.floor(points / fleetSize)),
    duration: durationS,
  });
  const viaInsurance = (key: string): Promise<number> =>
    insurance.consume(key).then(
      () => 0,
      // A RateLimiterRes rejection means "over the limit"; anything else is a fault: fail closed.
      (reason: unknown) => {
        if (reason instanceof RateLimiterRes) return Math.max(1, Math.ceil(reason.msBeforeNext / 1000));
        throw limiterFault();
      },
    );
  const overLimit = (result: [number, number]): number => {
    if (!Array.isArray(result) || !Number.isInteger(result[0]) || !Number.isInteger(result[1])) throw limiterFault();
    return result[0] > points ? Math.max(1, Math.ceil(result[1] / 1000)) : 0;
  };
  return (key) => {
    // Fail over to memory at once instead of queueing on a reconnecting client.
    if (redis.status !== 'ready') return viaInsurance(key);
    return count(keyPrefix + key, durationS).then(overLimit, () => viaInsurance(key));
  };
}

export function createRateLimits(opts: {
  redis: RedisClient;
  keyPrefix: string;
  voterPoints: number;
  voterDurationS: number;
  networkPoints: number;
  networkDurationS: number;
  /** Instances sharing the budget while Redis is unreachable (each gets 1/fleetSize of it). */
  fleetSize: number;
}): RateLimits {
  const common = { redis: opts.redis, keyPrefix: opts.keyPrefix, fleetSize: opts.fleetSize };
  const voter = createKeyedLimit({
    ...common,
    name: 'voter',
    points: opts.voterPoints,
    durationS: opts.voterDurationS,
  });
  const network = createKeyedLimit({
    ...common,
    name: 'net',
    points: opts.networkPoints,
    durationS: opts.networkDurationS,
  });
  return {
    async consume(voterId, networkPrefix) {
      // Both settle before either error is thrown (no unhandled rejection from the other).
      const [rv, rn] = await Promise.allSettled([voter(voterId), network(networkPrefix)]);
      if (rv.status === 'rejected') throw rv.reason;
      if (rn.status === 'rejected') throw rn.reason;
      return Math.max(rv.value, rn.value);
    },
  };
}

/** The client's network: the /24 of an IPv4 address, the /48 of an IPv6 address (never the full address). */
export function networkPrefixOf(address: string | undefined): string {
  if (!address) return 'unknown';
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(v4)) {
    const parts = v4.split('.');
    return `${parts[0]}.${parts[1]}.${parts[2]}.0/24`;
  }
  if (address.includes(':')) {
    // Expand :: to find the first three 16-bit groups.
    const [head = '', tail = ''] = address.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === '' ? [] : tail.split(':');
    const groups = address.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
    const g = (i: number) => (groups[i] ?? '0').toLowerCase().replace(/^0+(?=.)/, '');
    return `${g(0)}:${g(1)}:${g(2)}::/48`;
  }
  return 'unknown';
}
