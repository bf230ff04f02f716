import { type RedisClient, voteKey } from '@votestream/runtime';

/**
 * The vote's fast guards in Redis. The stream processor's dedupe is the authoritative one-vote-per-voter
 * guard; these give the voter an immediate, correct answer in the common cases and keep replays out.
 *
 * Keys (Redis Cluster: the guard, the lease and the idempotency record share the hash tag `{pollId/voterId}`,
 * so every script touches one slot; the challenge key is global on purpose, one solution one vote across every
 * voter and poll):
 *   `<p>voted:{poll/voter}` -> `voteId|optionId|receivedAt` while undecided, `...|D` once Kafka acknowledged it
 *                              (the vote guard, also the "pending" receipt)
 *   `<p>lease:{poll/voter}` -> present while the admitting process may still append the vote to Kafka
 *                              (PX = VOTE_PRODUCE_DEADLINE_MS; the batcher never sends a vote past it)
 *   `<p>idem:{poll/voter}:<Idempotency-Key>` -> JSON IdempotencyRecord
 *   `<p>altcha:<challengeId>` -> voteId                       (the solved challenge, accepted once)
 *
 * A guard without `|D` and without a lease is stale: its process died or gave up between admission and answer.
 * Nobody knows from Redis whether that vote reached Kafka; `resolution.ts` asks the stream (a read barrier).
 * A resend with the same Idempotency-Key needs no barrier: its voteId is derived from the key (`vote-id.ts`),
 * so whatever lands is the same vote.
 */
export interface IdempotencyRecord {
  /** P: being produced; F: the produce failed or its outcome is unknown (a resend may retry it); D: done. */
  s: 'P' | 'F' | 'D';
  /** The request it answers: pollId, optionId, castAt. A different request under the same key is 422. */
  b: string;
  v: string;
  /** With D: the 202 body to replay. */
  r?: unknown;
}

export type Admission =
  /** Nothing of this voter's in Redis: the guard, the lease and the pending record are ours. */
  | { kind: 'admitted'; guard: string }
  /** This key's own earlier attempt died or failed unanswered: we produce the same vote (same voteId) again. */
  | { kind: 'taken_over'; guard: string }
  | { kind: 'replay'; record: IdempotencyRecord }
  /** This key's vote was acknowledged, its idempotency record is gone: answer 202 with it again. */
  | { kind: 'acknowledged'; guard: string }
  | { kind: 'key_reused' }
  /** Another attempt of this voter may still reach Kafka: come back after `retryAfterMs`. */
  | { kind: 'in_flight'; retryAfterMs: number }
  | { kind: 'already_voted'; voteId: string }
  /** A guard whose process can no longer append: the stream must say whether its vote landed. */
  | { kind: 'stale'; guard: string }
  | { kind: 'challenge_replayed' };

/**
 * KEYS: idem, voted, lease. ARGV: guard, idemPending, guardTtlS, idemTtlS, leaseMs, voteId, optionId.
 * Records start with `{"s":"P"` / `{"s":"F"` / `{"s":"D"` (8 bytes); the rest of a P or F record is the request.
 */
const admitLua = `
local idem = redis.call('GET', KEYS[1])
if idem then
  local s = string.sub(idem, 1, 8)
  if s == '{"s":"D"' then return {'replay', idem} end
  if string.sub(idem, 9) ~= string.sub(ARGV[2], 9) then return {'key_reused'} end
end
local guard = redis.call('GET', KEYS[2])
if not guard then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
  return {'admitted', ARGV[1]}
end
local gid, gopt = string.match(guard, '^([^|]*)|([^|]*)|')
local done = string.sub(guard, -2) == '|D'
local lease = redis.call('PTTL', KEYS[3])
if gid == ARGV[6] then
  if gopt ~= ARGV[7] then return {'key_reused'} end
  if done then return {'acknowledged', guard} end
  local failed = idem and string.sub(idem, 1, 8) == '{"s":"F"'
  if lease > 0 and not failed then return {'in_flight', tostring(lease)} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
  return {'taken_over', guard}
end
if done then return {'already_voted', gid} end
if lease > 0 then return {'in_flight', tostring(lease)} end
return {'stale', guard}
`;

/**
 * After Kafka acknowledged the vote: the guard is marked decided-by-ingest (`|D`, only if it is still this vote's)
 * and the idempotency record becomes the final answer to replay. KEYS: voted, idem. ARGV: guard, guardTtlS, record,
 * idemTtlS. Returns 0 if the guard was not this vote's any more (an invariant broken: logged by the caller).
 */
const completeLua = `
local ok = 0
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1] .. '|D', 'EX', ARGV[2])
  ok = 1
elseif cur == ARGV[1] .. '|D' then
  ok = 1
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
return ok
`;

/** The produce failed or its outcome is unknown: the record says a resend with this key may retry. KEYS: idem. */
const failLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], '{"s":"F"' .. string.sub(ARGV[1], 9), 'KEEPTTL')
end
return 1
`;

/** Nothing was sent: free the voter. KEYS: voted, idem, lease. ARGV: guard, idemPending. */
const releaseLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[3])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
`;

/** Replaces (ARGV[2] non-empty, with TTL ARGV[3]) or deletes a key only if it still holds ARGV[1]. */
const compareAndSetLua = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
`;

type GuardRedis = RedisClient & {
  vsAdmit(
    idem: string,
    voted: string,
    lease: string,
    guard: string,
    idemPending: string,
    guardTtlS: number,
    idemTtlS: number,
    leaseMs: number,
    voteId: string,
    optionId: string,
  ): Promise<[string, string?]>;
  vsComplete(
    voted: string,
    idem: string,
    guard: string,
    guardTtlS: number,
    record: string,
    idemTtlS: number,
  ): Promise<number>;
  vsFail(idem: string, idemPending: string): Promise<number>;
  vsRelease(voted: string, idem: string, lease: string, guard: string, idemPending: string): Promise<number>;
  vsCompareAndSet(key: string, expected: string, value: string, ttlS: number): Promise<number>;
};

export interface GuardKeys {
  voted: string;
  idem: string;
  lease: string;
}

/** `voteId|optionId|receivedAt` (undecided) or with `|D` (acknowledged by Kafka). */
export function parseGuard(guard: string): { voteId: string; optionId: string; acknowledged: boolean } {
  const [voteId = '', optionId = ''] = guard.split('|');
  return { voteId, optionId, acknowledged: guard.endsWith('|D') };
}

export interface VoteGuards {
  keys(pollId: string, voterId: string, idempotencyKey: string): GuardKeys;
  /**
   * One round trip (auto-pipelined): the admission script and the challenge `SET NX`. A replayed
   * challenge undoes a fresh admission. An idempotent replay wins over everything else.
   */
  admit(a: {
    keys: GuardKeys;
    guardValue: string;
    idemPending: string;
    voteId: string;
    optionId: string;
    challengeId: string | null;
    challengeTtlS: number;
  }): Promise<Admission>;
  /**
   * After Kafka acknowledged the vote, before the 202: the guard is marked acknowledged for its full TTL and the
   * idempotency record answers future retries with the same body. `recordJson` is the serialised
   * `IdempotencyRecord` with `s: 'D'`. False if the guard was not this vote's any more.
   */
  complete(keys: GuardKeys, guard: string, recordJson: string): Promise<boolean>;
  /** After a produce that failed or may have landed: keep the guard (and the lease); a same-key resend may retry. */
  fail(keys: GuardKeys, idemPending: string): Promise<void>;
  /** After a fresh admission whose vote was never sent: release everything so the voter can vote. */
  release(a: {
    keys: GuardKeys;
    guardValue: string;
    idemPending: string;
    challengeId: string | null;
    voteId: string;
  }): Promise<void>;
  /** Gives a challenge taken by `admit` back (nothing was admitted with it), if it is still ours. */
  releaseChallenge(challengeId: string, voteId: string): Promise<void>;
  /** A stale guard resolved by the stream: replace it with the decided vote's guard, or delete it (`null`). */
  settle(keys: GuardKeys, stale: string, decided: string | null): Promise<boolean>;
  /** The guard of a vote ingest accepted (or is producing), for votes/me while the decision is pending. */
  pending(pollId: string, voterId: string): Promise<{ voteId: string; optionId: string } | null>;
}

export function createVoteGuards(
  redis: RedisClient,
  prefix: string,
  ttl: { guardS: number; idempotencyS: number; leaseMs: number },
): VoteGuards {
  const r = redis as GuardRedis;
  if (typeof r.vsAdmit !== 'function') {
    redis.defineCommand('vsAdmit', { numberOfKeys: 3, lua: admitLua });
    redis.defineCommand('vsComplete', { numberOfKeys: 2, lua: completeLua });
    redis.defineCommand('vsFail', { numberOfKeys: 1, lua: failLua });
    redis.defineCommand('vsRelease', { numberOfKeys: 3, lua: releaseLua });
    redis.defineCommand('vsCompareAndSet', { numberOfKeys: 1, lua: compareAndSetLua });
  }
  const challengeKey = (id: string) => `${prefix}altcha:${id}`;
  const votedKey = (pollId: string, voterId: string) => `${prefix}voted:{${voteKey(pollId, voterId)}}`;
  const releaseChallenge = async (challengeId: string, voteId: string) => {
    await r.vsCompareAndSet(challengeKey(challengeId), voteId, '', 0);
  };
  return {
    keys(pollId, voterId, idempotencyKey) {
      const tag = `{${voteKey(pollId, voterId)}}`;
      return {
        voted: `${prefix}voted:${tag}`,
        idem: `${prefix}idem:${tag}:${idempotencyKey}`,
        lease: `${prefix}lease:${tag}`,
      };
    },
    async admit(a) {
      const { keys } = a;
      const [admitted, challengeFresh] = await Promise.all([
        r.vsAdmit(
          keys.idem,
          keys.voted,
          keys.lease,
          a.guardValue,
          a.idemPending,
          ttl.guardS,
          ttl.idempotencyS,
          ttl.leaseMs,
          a.voteId,
          a.optionId,
        ),
        a.challengeId === null
          ? Promise.resolve(true)
          : redis
              .set(challengeKey(a.challengeId), a.voteId, 'EX', Math.max(1, a.challengeTtlS), 'NX')
              .then((ok) => ok === 'OK'),
      ]);
      const [kind, value = ''] = admitted;
      switch (kind) {
        case 'replay':
          // A challenge we just took for an idempotent replay stays taken: a replay needs no new one.
          return { kind: 'replay', record: JSON.parse(value) as IdempotencyRecord };
        case 'key_reused':
          return { kind: 'key_reused' };
        case 'acknowledged':
          return { kind: 'acknowledged', guard: value };
        case 'in_flight':
          // Nothing was admitted: the solution is not spent, the voter may send it again after Retry-After.
          if (a.challengeId !== null && challengeFresh) await releaseChallenge(a.challengeId, a.voteId);
          return { kind: 'in_flight', retryAfterMs: Number(value) };
        case 'already_voted':
          return { kind: 'already_voted', voteId: value };
        case 'stale':
          return { kind: 'stale', guard: value };
        case 'admitted':
        case 'taken_over':
          if (!challengeFresh) {
            if (kind === 'admitted') {
              await r.vsRelease(keys.voted, keys.idem, keys.lease, a.guardValue, a.idemPending);
            } else {
              await r.vsFail(keys.idem, a.idemPending);
            }
            return { kind: 'challenge_replayed' };
          }
          return { kind, guard: value };
        default:
          throw new Error(`vote admission script answered ${kind}`);
      }
    },
    async complete(keys, guard, recordJson) {
      return (await r.vsComplete(keys.voted, keys.idem, guard, ttl.guardS, recordJson, ttl.idempotencyS)) === 1;
    },
    async fail(keys, idemPending) {
      await r.vsFail(keys.idem, idemPending);
    },
    async release(a) {
      await Promise.all([
        r.vsRelease(a.keys.voted, a.keys.idem, a.keys.lease, a.guardValue, a.idemPending),
        a.challengeId === null ? Promise.resolve(0) : r.vsCompareAndSet(challengeKey(a.challengeId), a.voteId, '', 0),
      ]);
    },
    releaseChallenge,
    async settle(keys, stale, decided) {
      return (await r.vsCompareAndSet(keys.voted, stale, decided ?? '', ttl.guardS)) === 1;
    },
    async pending(pollId, voterId) {
      const v = await redis.get(votedKey(pollId, voterId));
      if (v === null) return null;
      const { voteId, optionId } = parseGuard(v);
      return { voteId, optionId };
    },
  };
}
