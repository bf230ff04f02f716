import { invariant, type RedisClient } from '@votestream/runtime';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Two fixed-window limiters in Redis, shared by the whole fleet: per voter and per network prefix. Each is
 * one atomic script on one key (rate-limiter-flexible's `rlflxIncr`: SET NX EX, INCRBY, PTTL, EXPIRE if it
 * had none), so a Redis Cluster runs each on its key's slot; keys `<prefix>rl:voter:<voterId>` and
 * `<prefix>rl:net:<prefix>`. The vote path calls the script directly (one EVALSHA per limiter, auto-pipelined
 * with the other requests' commands) instead of through RateLimiterRedis, whose promise and result objects
 * cost more than the command itself. Each limiter has an in-memory insurance limiter (rate-limiter-flexible's
 * RateLimiterMemory) that takes over while Redis is not ready or a command fails; its budget is the fleet
 * budget divided by `fleetSize`, because each instance then only sees its own share of the traffic.
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

export function createRateLimits(opts: {
  redis: RedisClient;
  keyPrefix: string;
  voterPoints: number;
  voterDurationS: number;
  networkPoints: number;
  networkDurationS: number;
  fleetSize?: number;
}): RateLimits {
  invariant(
    Number.isInteger(opts.voterDurationS) && opts.voterDurationS >= 1 && Number.isInteger(opts.networkDurationS),
    'rate limit windows are whole seconds >= 1',
  );
  invariant(opts.networkDurationS >= 1 && opts.voterPoints >= 1 && opts.networkPoints >= 1, 'rate limits >= 1');
  const redis = opts.redis as LimiterRedis;
  if (typeof redis.vsFixedWindow !== 'function') {
    redis.defineCommand('vsFixedWindow', { numberOfKeys: 1, lua: fixedWindowLua });
  }
  const fleet = Math.max(1, opts.fleetSize ?? 1);
  const make = (name: string, points: number, durationS: number) => {
    const keyPrefix = `${opts.keyPrefix}rl:${name}:`;
    const insurance = new RateLimiterMemory({
      keyPrefix: `${name}-insurance`,
      points: Math.max(1, Math.floor(points / fleet)),
      duration: durationS,
    });
    const viaInsurance = (key: string): Promise<number> =>
      insurance.consume(key).then(
        () => 0,
        // A RateLimiterRes rejection means "over the limit"; anything else lets the request through rather
        // than refuse voters on an infra fault.
        (reason: unknown) =>
          reason instanceof RateLimiterRes ? Math.max(1, Math.ceil(reason.msBeforeNext / 1000)) : 0,
      );
    const overLimit = (result: [number, number]): number =>
      result[0] > points ? Math.max(1, Math.ceil(result[1] / 1000)) : 0;
    return (key: string): Promise<number> => {
      // Fail over to memory at once instead of queueing on a reconnecting client.
      if (redis.status !== 'ready') return viaInsurance(key);
      return redis.vsFixedWindow(keyPrefix + key, 1, durationS).then(overLimit, () => viaInsurance(key));
    };
  };
  const voter = make('voter', opts.voterPoints, opts.voterDurationS);
  const network = make('net', opts.networkPoints, opts.networkDurationS);
  return {
    async consume(voterId, networkPrefix) {
      const v = voter(voterId);
      const n = network(networkPrefix);
      return Math.max(await v, await n);
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
