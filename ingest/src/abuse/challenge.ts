import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { type Challenge, createChallenge, type Solution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';

/**
 * ALTCHA proof of work (altcha-lib 2.x format, the one the SDK solves), in deterministic mode: the
 * server picks a secret counter uniformly in [0, maxNumber), derives SHA-256(salt || nonce || counter)
 * and publishes its first bytes as `keyPrefix`; the device searches counters from 0 until its key has that
 * prefix, so the expected work is maxNumber / 2 hashes. The derived key's HMAC (`keySignature`) and the
 * HMAC over all parameters make verification stateless and cheap (two HMACs, no re-derivation).
 * Replay is stopped separately by an atomic Redis `SET NX` on `challengeId` (see votes/admission.ts).
 *
 * A challenge is bound to one (voter, poll): its signed `data.b` is an HMAC of `sub` and `pollId` (the raw `sub`
 * is not in the challenge), so a solution is worth one vote by the voter who asked for it, in that poll; a bot
 * cannot solve challenges in bulk ahead of time and spend them across accounts or polls. The secret counter comes
 * from `crypto.randomInt` (`Math.random` is predictable enough to skip the search), and the difficulty
 * (`maxNumber`) is chosen per request by abuse/challenge-policy.ts.
 *
 * Verification is on the vote path, so it does not call altcha-lib's `verifySolution`, which imports a WebCrypto
 * key and awaits two `subtle.sign` calls per vote (a quarter of ingest's CPU in a profile). `verifyAltchaV2`
 * computes the same two HMACs with node:crypto, synchronously; a unit test checks it agrees with altcha-lib.
 */
export interface ChallengeIssuer {
  /** A challenge for `binding` (see `bind`) with the secret counter drawn from [0, maxNumber). */
  issue(binding: string, maxNumber: number): Promise<Challenge>;
  /** `X-Altcha` header value (base64 of `{ challenge, solution }`) -> the verified challenge, or null. */
  verify(header: string, binding: string): Promise<VerifiedChallenge | null>;
  /** The binding of a challenge to one voter in one poll: 128 bits of HMAC(key, sub \n pollId), hex. */
  bind(voterId: string, pollId: string): string;
}

export interface VerifiedChallenge {
  /** The challenge's signed random nonce: unique per issued challenge, the replay guard key. */
  challengeId: string;
  /** Epoch seconds; the replay guard lives until then. */
  expiresAtS: number;
}

/** Anything longer is not a solution we issued (a real one is ~700 bytes). */
export const challengeHeaderCharsMax = 4096;

export function createChallengeIssuer(opts: { hmacKey: string; expiresS: number }): ChallengeIssuer {
  const keySecret = `${opts.hmacKey}:derived-key`;
  const bindingSecret = `${opts.hmacKey}:binding`;
  return {
    bind(voterId, pollId) {
      return createHmac('sha256', bindingSecret).update(`${voterId}\n${pollId}`).digest('hex').slice(0, 32);
    },
    issue(binding, maxNumber) {
      return createChallenge({
        algorithm: 'SHA-256',
        cost: 1,
        counter: randomInt(0, maxNumber),
        data: { b: binding },
        deriveKey,
        hmacSignatureSecret: opts.hmacKey,
        hmacKeySignatureSecret: keySecret,
        expiresAt: Math.floor(Date.now() / 1000) + opts.expiresS,
      });
    },
    async verify(header, binding) {
      if (header.length === 0 || header.length > challengeHeaderCharsMax) return null;
      let payload: { challenge?: Challenge; solution?: Solution };
      try {
        payload = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
      } catch {
        return null;
      }
      const challenge = payload?.challenge;
      const solution = payload?.solution;
      const p = challenge?.parameters;
      if (
        challenge === undefined ||
        typeof p !== 'object' ||
        p === null ||
        typeof solution !== 'object' ||
        solution === null ||
        p.algorithm !== 'SHA-256' ||
        p.cost !== 1 ||
        typeof p.nonce !== 'string' ||
        typeof p.keySignature !== 'string' ||
        // Every challenge ingest issues expires; one without expiresAt is not ours.
        typeof p.expiresAt !== 'number' ||
        p.expiresAt * 1000 <= Date.now() ||
        // Issued to another voter or for another poll (checked again under the signature below).
        typeof p.data?.b !== 'string' ||
        !hexEqual(p.data.b, binding)
      ) {
        return null;
      }
      return verifyAltchaV2(challenge, solution, opts.hmacKey, keySecret)
        ? { challengeId: p.nonce, expiresAtS: p.expiresAt }
        : null;
    },
  };
}

const lowercaseHex = /^(?:[0-9a-f]{2})+$/;
const uint32Max = 0xffff_ffff;

/** JSON with object keys sorted at every level (altcha-lib's canonical form of the signed parameters). */
function canonicalJson(value: unknown): string {
  return JSON.stringify(sortedKeys(value));
}

/** A copy of `v` with object keys in sorted order at every level, undefined members left out (no closures: per vote). */
function sortedKeys(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  const sorted: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) sorted[k] = sortedKeys(o[k]);
  return sorted;
}

function hexEqual(expected: unknown, actualHex: string): boolean {
  if (typeof expected !== 'string' || expected.length !== actualHex.length) return false;
  return timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(actualHex, 'latin1'));
}

/**
 * The ALTCHA v2 check of a solution against a challenge ingest signed, with the derived-key signature
 * (altcha-lib's fast path): HMAC-SHA256 over the canonical parameters equals the challenge's signature, and
 * HMAC-SHA256 over the derived key's bytes equals `keySignature`. Expiry is checked by the caller.
 */
export function verifyAltchaV2(challenge: Challenge, solution: Solution, hmacKey: string, keySecret: string): boolean {
  const signature = createHmac('sha256', hmacKey).update(canonicalJson(challenge.parameters)).digest('hex');
  if (!hexEqual(challenge.signature, signature)) return false;
  const { counter, derivedKey } = solution as { counter: unknown; derivedKey: unknown };
  if (typeof derivedKey !== 'string' || !lowercaseHex.test(derivedKey)) return false;
  if (!Number.isInteger(counter) || (counter as number) < 0 || (counter as number) > uint32Max) return false;
  const keySignature = createHmac('sha256', keySecret).update(Buffer.from(derivedKey, 'hex')).digest('hex');
  return hexEqual(challenge.parameters.keySignature, keySignature);
}
