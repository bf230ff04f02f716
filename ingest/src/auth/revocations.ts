import type { RedisClient } from '@votestream/runtime';
import { ProblemError } from '../http/problem.ts';

/**
 * Revoked token ids (`jti`), for stolen tokens: one Redis sorted set `<prefix>revoked-jti`, member = jti,
 * score = epoch seconds until which the entry matters (the token's own `refusedAfterS`: past it the verifier
 * refuses the token for its age or exp anyway). Bounded two ways: entries past their score are removed on every
 * revocation, and a revocation that would take the set beyond `revocationsMax` is refused (409
 * revocation_list_full) instead of growing it. Checked on every authenticated request (one ZSCORE, auto-pipelined
 * with the request's other commands). If Redis cannot answer, the request is refused with 503 (fail closed): a
 * revoked token must not get through because the list was unreachable.
 */
export interface TokenRevocations {
  /** True when this jti is revoked. Throws ProblemError('unavailable') when Redis cannot answer. */
  isRevoked(jti: string): Promise<boolean>;
  /** Revokes `jti` until `untilS` (epoch seconds); returns the entries now held. */
  revoke(jti: string, untilS: number, nowS: number): Promise<number>;
}

/** Prune expired entries, refuse beyond the cap, add (or extend) the jti; atomic, on one key. */
const revokeLua = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local have = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not have and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return -1
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], 0, 0, 'REV', 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(top[2])))
return redis.call('ZCARD', KEYS[1])
`;

type RevocationRedis = RedisClient & {
  vsRevokeJti(key: string, jti: string, untilS: number, nowS: number, max: number): Promise<number>;
};

export function createTokenRevocations(
  redis: RedisClient,
  keyPrefix: string,
  revocationsMax: number,
): TokenRevocations {
  const r = redis as RevocationRedis;
  if (typeof r.vsRevokeJti !== 'function') r.defineCommand('vsRevokeJti', { numberOfKeys: 1, lua: revokeLua });
  const key = `${keyPrefix}revoked-jti`;
  return {
    async isRevoked(jti) {
      let score: string | null;
      try {
        score = await redis.zscore(key, jti);
      } catch {
        throw new ProblemError('unavailable', 'the token revocation list is unreachable', undefined, 2);
      }
      return score !== null && Number(score) >= Math.floor(Date.now() / 1000);
    },
    async revoke(jti, untilS, nowS) {
      let held: number;
      try {
        held = await r.vsRevokeJti(key, jti, untilS, nowS, revocationsMax);
      } catch {
        throw new ProblemError('unavailable', 'the token revocation list is unreachable', undefined, 2);
      }
      if (held < 0) {
        throw new ProblemError(
          'revocation_list_full',
          `the revocation list holds TOKEN_REVOCATIONS_MAX=${revocationsMax} live entries; rotate the signing key instead`,
        );
      }
      return held;
    },
  };
}
