import { type Challenge, createChallenge, type Solution, verifySolution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';

/**
 * ALTCHA proof of work (altcha-lib 2.x format, the one the SDK solves), in deterministic mode: the
 * server picks a secret counter uniformly in [0, maxNumber), derives SHA-256(salt || nonce || counter)
 * and publishes its first bytes as `keyPrefix`; the device searches counters from 0 until its key has that
 * prefix, so the expected work is maxNumber / 2 hashes. The derived key's HMAC (`keySignature`) and the
 * HMAC over all parameters make verification stateless and cheap (two HMACs, no re-derivation).
 * Replay is stopped separately by an atomic Redis `SET NX` on `challengeId` (see votes/admission.ts).
 */
export interface ChallengeIssuer {
  issue(): Promise<Challenge>;
  /** `X-Altcha` header value (base64 of `{ challenge, solution }`) -> the verified challenge, or null. */
  verify(header: string): Promise<VerifiedChallenge | null>;
}

export interface VerifiedChallenge {
  /** The challenge's signed random nonce: unique per issued challenge, the replay guard key. */
  challengeId: string;
  /** Epoch seconds; the replay guard lives until then. */
  expiresAtS: number;
}

/** Anything longer is not a solution we issued (a real one is ~700 bytes). */
export const challengeHeaderCharsMax = 4096;

export function createChallengeIssuer(opts: { hmacKey: string; maxNumber: number; expiresS: number }): ChallengeIssuer {
  const keySecret = `${opts.hmacKey}:derived-key`;
  return {
    issue() {
      return createChallenge({
        algorithm: 'SHA-256',
        cost: 1,
        counter: Math.floor(Math.random() * opts.maxNumber),
        deriveKey,
        hmacSignatureSecret: opts.hmacKey,
        hmacKeySignatureSecret: keySecret,
        expiresAt: Math.floor(Date.now() / 1000) + opts.expiresS,
      });
    },
    async verify(header) {
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
        p.expiresAt * 1000 <= Date.now()
      ) {
        return null;
      }
      try {
        const result = await verifySolution({
          challenge,
          solution,
          deriveKey,
          hmacSignatureSecret: opts.hmacKey,
          hmacKeySignatureSecret: keySecret,
        });
        return result.verified ? { challengeId: p.nonce, expiresAtS: p.expiresAt } : null;
      } catch {
        return null;
      }
    },
  };
}
