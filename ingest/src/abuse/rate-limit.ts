import type { RedisClient } from '@votestream/runtime';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Two fixed-window limiters in Redis (rate-limiter-flexible, one atomic INCR+PEXPIRE script each),
 * shared by the whole fleet: per voter and per network prefix. Each has an in-memory insurance
 * limiter that takes over while Redis is unreachable; its budget is the fleet budget divided by
 * `fleetSize`, because each instance then only sees its own share of the traffic.
 */
export interface RateLimits {
  /** Resolves to 0 when allowed, or the seconds after which to retry. */
  consume(voterId: string, networkPrefix: string): Promise<number>;
}

export function createRateLimits(opts: {
  redis: RedisClient;
  keyPrefix: string;
  voterPoints: number;
  voterDurationS: number;
  networkPoints: number;
  networkDurationS: number;
  fleetSize?: number;
}): RateLimits {
  const fleet = Math.max(1, opts.fleetSize ?? 1);
  const make = (name: string, points: number, duration: number) =>
    new RateLimiterRedis({
      storeClient: opts.redis,
      keyPrefix: `${opts.keyPrefix}rl:${name}`,
      points,
      duration,
      // Fail over to memory at once instead of queueing on a reconnecting client.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({
        keyPrefix: `${name}-insurance`,
        points: Math.max(1, Math.floor(points / fleet)),
        duration,
      }),
    });
  const voter = make('voter', opts.voterPoints, opts.voterDurationS);
  const network = make('net', opts.networkPoints, opts.networkDurationS);
  const retryAfter = (outcome: PromiseSettledResult<RateLimiterRes>): number => {
    if (outcome.status === 'fulfilled') return 0;
    const reason = outcome.reason;
    // A RateLimiterRes rejection means "over the limit"; anything else is a store error the insurance
    // limiter could not absorb: let the request through rather than refuse voters on an infra fault.
    if (reason instanceof RateLimiterRes) return Math.max(1, Math.ceil(reason.msBeforeNext / 1000));
    return 0;
  };
  return {
    async consume(voterId, networkPrefix) {
      const [v, n] = await Promise.allSettled([voter.consume(voterId), network.consume(networkPrefix)]);
      return Math.max(retryAfter(v), retryAfter(n));
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
