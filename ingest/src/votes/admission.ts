import type { RedisClient } from '@votestream/runtime';

/**
 * The vote's fast guards in Redis. The stream processor's dedupe is the authoritative one-vote-per-voter
 * guard; these give the voter an immediate, correct answer in the common cases and keep replays out.
 *
 * Keys (Redis Cluster: the guard and the idempotency record share the hash tag `{pollId/voterId}`, so
 * the admission script touches one slot; the challenge key is global on purpose, one solution one vote
 * across every voter and poll):
 *   `<p>voted:{poll/voter}`   -> `voteId|optionId|receivedAt`  (the vote guard, also the "pending" receipt)
 *   `<p>idem:{poll/voter}:<Idempotency-Key>` -> JSON IdempotencyRecord
 *   `<p>altcha:<challengeId>` -> voteId                       (the solved challenge, accepted once)
 */
export interface IdempotencyRecord {
  /** P: the vote is being produced; D: done, `r` is the 202 body to replay. */
  s: 'P' | 'D';
  /** The request it answers: pollId, optionId, castAt. A different request under the same key is 422. */
  b: string;
  v: string;
  r?: unknown;
}

export type Admission =
  | { kind: 'admitted' }
  | { kind: 'idempotent'; record: IdempotencyRecord }
  | { kind: 'already_voted'; voteId: string }
  | { kind: 'challenge_replayed' };

const admitLua = `
local idem = redis.call('GET', KEYS[1])
if idem then return {'idem', idem} end
local voted = redis.call('GET', KEYS[2])
if voted then return {'voted', voted} end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
return {'ok'}
`;

/**
 * After Kafka acknowledged the vote: the guard gets its full TTL (only if it is still ours) and the idempotency
 * record becomes the final answer to replay.
 */
const completeLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
return 1
`;

/** Deletes a key only if it still holds the value we wrote (never someone else's guard). */
const compareAndDeleteLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type GuardRedis = RedisClient & {
  vsAdmit(
    idemKey: string,
    votedKey: string,
    guard: string,
    idem: string,
    guardTtl: number,
    idemTtl: number,
  ): Promise<[string, string?]>;
  vsCompareAndDelete(key: string, value: string): Promise<number>;
  vsComplete(
    votedKey: string,
    idemKey: string,
    guard: string,
    guardTtl: number,
    record: string,
    idemTtl: number,
  ): Promise<number>;
};

export interface VoteGuards {
  keys(pollId: string, voterId: string, idempotencyKey: string): { voted: string; idem: string };
  /**
   * One round trip (auto-pipelined): the admission script and the challenge `SET NX`. A replayed
   * challenge undoes our admission. An idempotent replay wins over everything else.
   */
  admit(a: {
    voted: string;
    idem: string;
    guardValue: string;
    idemPending: string;
    challengeId: string | null;
    challengeTtlS: number;
  }): Promise<Admission>;
  /**
   * After Kafka acknowledged the vote, before the 202: the guard is kept for its full TTL and the idempotency
   * record answers future retries with the same body. Until then both live only VOTE_PENDING_TTL_S.
   * `recordJson` is the serialised `IdempotencyRecord` with `s: 'D'` (the caller builds it without JSON.stringify).
   */
  complete(keys: { voted: string; idem: string }, guardValue: string, recordJson: string): Promise<void>;
  /** After a failed produce: release everything so the voter can retry. */
  release(a: {
    voted: string;
    idem: string;
    guardValue: string;
    idemPending: string;
    challengeId: string | null;
    voteId: string;
  }): Promise<void>;
  /** The guard value of a vote ingest accepted (or is producing), for votes/me while the decision is pending. */
  pending(pollId: string, voterId: string): Promise<{ voteId: string; optionId: string } | null>;
}

export function createVoteGuards(
  redis: RedisClient,
  prefix: string,
  ttl: { guardS: number; idempotencyS: number; pendingS: number },
): VoteGuards {
  const r = redis as GuardRedis;
  if (typeof r.vsAdmit !== 'function') {
    redis.defineCommand('vsAdmit', { numberOfKeys: 2, lua: admitLua });
    redis.defineCommand('vsCompareAndDelete', { numberOfKeys: 1, lua: compareAndDeleteLua });
    redis.defineCommand('vsComplete', { numberOfKeys: 2, lua: completeLua });
  }
  const challengeKey = (id: string) => `${prefix}altcha:${id}`;
  const votedKey = (pollId: string, voterId: string) => `${prefix}voted:{${pollId}/${voterId}}`;
  return {
    keys(pollId, voterId, idempotencyKey) {
      const tag = `{${pollId}/${voterId}}`;
      return { voted: `${prefix}voted:${tag}`, idem: `${prefix}idem:${tag}:${idempotencyKey}` };
    },
    async admit(a) {
      const voteId = a.guardValue.slice(0, a.guardValue.indexOf('|'));
      const [admitted, challengeFresh] = await Promise.all([
        // Both keys expire after pendingS unless complete() runs: a process that dies mid-produce frees its voter.
        r.vsAdmit(a.idem, a.voted, a.guardValue, a.idemPending, ttl.pendingS, ttl.pendingS),
        a.challengeId === null
          ? Promise.resolve(true)
          : redis
              .set(challengeKey(a.challengeId), voteId, 'EX', Math.max(1, a.challengeTtlS), 'NX')
              .then((ok) => ok === 'OK'),
      ]);
      const [kind, value] = admitted;
      if (kind === 'idem') {
        // Give a challenge we just took for an idempotent replay back to... nobody: a replay needs no new one.
        return { kind: 'idempotent', record: JSON.parse(value as string) as IdempotencyRecord };
      }
      if (kind === 'voted') {
        const existing = value as string;
        return { kind: 'already_voted', voteId: existing.slice(0, existing.indexOf('|')) };
      }
      if (!challengeFresh) {
        await Promise.all([r.vsCompareAndDelete(a.voted, a.guardValue), r.vsCompareAndDelete(a.idem, a.idemPending)]);
        return { kind: 'challenge_replayed' };
      }
      return { kind: 'admitted' };
    },
    async complete(keys, guardValue, recordJson) {
      await r.vsComplete(keys.voted, keys.idem, guardValue, ttl.guardS, recordJson, ttl.idempotencyS);
    },
    async release(a) {
      await Promise.all([
        r.vsCompareAndDelete(a.voted, a.guardValue),
        r.vsCompareAndDelete(a.idem, a.idemPending),
        a.challengeId === null ? Promise.resolve(0) : r.vsCompareAndDelete(challengeKey(a.challengeId), a.voteId),
      ]);
    },
    async pending(pollId, voterId) {
      const v = await redis.get(votedKey(pollId, voterId));
      if (v === null) return null;
      const [voteId = '', optionId = ''] = v.split('|');
      return { voteId, optionId };
    },
  };
}
