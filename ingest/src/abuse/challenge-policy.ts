import type { RedisClient } from '@votestream/runtime';
import { ProblemError } from '../http/problem.ts';
import { fixedWindowCounter } from './rate-limit.ts';

/**
 * Who gets a challenge, and how hard it is. `GET /v1/challenge` is authenticated; each issuance counts, in one
 * fixed window (`windowS`), against the voter, the voter's network prefix and (when the app sends one) the device
 * id. The voter's count is also a rate limit: beyond `voterChallengesMax` per window the answer is 429.
 *
 * Adaptive difficulty: a voter, network or device asking for challenges faster than its baseline (what a real
 * voter, or a busy venue's NAT, needs per window) gets a harder one, doubling the expected work each time its
 * velocity doubles, up to `maxNumberCeiling`. A bot's total work then grows with the square of its rate, while
 * a real voter (a few challenges per window) never sees more than `maxNumberBase`.
 */
export interface ChallengePolicyOptions {
  redis: RedisClient;
  keyPrefix: string;
  windowS: number;
  /** Challenges per voter per window; beyond it 429 rate_limited. */
  voterChallengesMax: number;
  /** Challenges per window at or below which the base difficulty applies. */
  voterBaseline: number;
  networkBaseline: number;
  deviceBaseline: number;
  maxNumberBase: number;
  maxNumberCeiling: number;
}

export interface ChallengePolicy {
  /** Counts one issuance; resolves the difficulty (`maxNumber`), or throws 429 rate_limited / 503 unavailable. */
  admit(voterId: string, networkPrefix: string, deviceId: string | null): Promise<number>;
}

/**
 * The difficulty for the worst of the observed velocities (count / baseline): the base up to 1x, then doubled per
 * doubling, never beyond the ceiling. Pure, so its arithmetic is unit-tested.
 */
export function adaptiveMaxNumber(base: number, ceiling: number, velocityRatios: readonly number[]): number {
  const worst = Math.max(1, ...velocityRatios.filter((r) => Number.isFinite(r)));
  const factor = 2 ** Math.ceil(Math.log2(worst));
  return Math.min(ceiling, base * factor);
}

export function createChallengePolicy(opts: ChallengePolicyOptions): ChallengePolicy {
  const count = fixedWindowCounter(opts.redis);
  const prefix = `${opts.keyPrefix}ch:`;
  return {
    async admit(voterId, networkPrefix, deviceId) {
      if (opts.redis.status !== 'ready') {
        throw new ProblemError('unavailable', 'the challenge counters are unreachable', undefined, 2);
      }
      let counts: [number, number][];
      try {
        counts = await Promise.all([
          count(`${prefix}voter:${voterId}`, opts.windowS),
          count(`${prefix}net:${networkPrefix}`, opts.windowS),
          ...(deviceId === null ? [] : [count(`${prefix}dev:${deviceId}`, opts.windowS)]),
        ]);
      } catch {
        throw new ProblemError('unavailable', 'the challenge counters are unreachable', undefined, 2);
      }
      const [voter, network, device] = counts as [[number, number], [number, number], [number, number]?];
      if (voter[0] > opts.voterChallengesMax) {
        throw new ProblemError(
          'rate_limited',
          `more than ${opts.voterChallengesMax} challenges in ${opts.windowS} s`,
          undefined,
          Math.max(1, Math.ceil(voter[1] / 1000)),
        );
      }
      return adaptiveMaxNumber(opts.maxNumberBase, opts.maxNumberCeiling, [
        voter[0] / opts.voterBaseline,
        network[0] / opts.networkBaseline,
        device === undefined ? 0 : device[0] / opts.deviceBaseline,
      ]);
    },
  };
}
