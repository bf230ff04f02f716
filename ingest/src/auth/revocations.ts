import type { RedisClient } from '@votestream/runtime';
import { ProblemError } from '../http/problem.ts';

/**
 * Revoked token ids (`jti`), for stolen tokens: Redis sorted sets `<prefix>revoked-jti:{<shard>}`, member = jti,
 * score = epoch seconds until which the entry matters (now + the max token age: past it the verifier refuses the
 * token for its age anyway). `revocationShards` sets, the jti's shard by FNV-1a hash: every authenticated request
 * reads one of them, so in a Redis Cluster the reads spread over slots instead of making one hot key. Bounded two
 * ways: entries past their score are removed on every revocation into that shard, and a revocation that would
 * take a shard beyond `revocationsMax / revocationShards` is refused (409 revocation_list_full) instead of
 * growing it. Checked on every authenticated request (one ZSCORE, auto-pipelined
 * with the request's other commands). If Redis cannot answer, the request is refused with 503 (fail closed): a
 * revoked token must not get through because the list was unreachable.
 */
export const revocationShards = 16;

/** The shard of a jti: FNV-1a (32-bit) of its UTF-16 code units, modulo `revocationShards`. */
export function revocationShardOf(jti: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jti.length; i++) {
    h ^= jti.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % revocationShards;
}

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
  const shardMax = Math.max(1, Math.ceil(revocationsMax / revocationShards));
  const keys = Array.from({ length: revocationShards }, (_, i) => `${keyPrefix}revoked-jti:{${i}}`);
  const keyOf = (jti: string) => keys[revocationShardOf(jti)] as string;
  return {
    async isRevoked(jti) {
      let score: string | null;
      try {
        score = await redis.zscore(keyOf(jti), jti);
      } catch {
        throw new ProblemError('unavailable', 'the token revocation list is unreachable', undefined, 2);
      }
      return score !== null && Number(score) >= Math.floor(Date.now() / 1000);
    },
    async revoke(jti, untilS, nowS) {
      let held: number;
      try {
        held = await r.vsRevokeJti(keyOf(jti), jti, untilS, nowS, shardMax);
      } catch {
        throw new ProblemError('unavailable', 'the token revocation list is unreachable', undefined, 2);
      }
      if (held < 0) {
        throw new ProblemError(
          'revocation_list_full',
          `this jti's shard of the revocation list is full (TOKEN_REVOCATIONS_MAX=${revocationsMax} over ${revocationShards} shards); rotate the signing key instead`,
        );
      }
      return held;
    },
  };
}
