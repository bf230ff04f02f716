import { createHash, createHmac, hash } from 'node:crypto';
import type { VoteAnalytics, VoteDecision } from '@votestream/schemas';

/**
 * The analytics view of a decision: no voter id, no token id, device id, challenge id, attestation or full user
 * agent; the voter becomes a per-poll pseudonym, the network a /16 (IPv4) or /32 (IPv6), the client its first
 * product token and major version. Pure; the salt comes from `PollSalts`.
 */

/** Bytes of the HMAC kept in a pseudonym: 128 bits, so two voters of one poll collide with probability ~n²/2^129. */
export const pseudonymBytes = 16;
/** Longest client family kept. */
export const clientFamilyCharsMax = 32;

/** SHA-256's block size: HMAC pads its key to it (RFC 2104). */
const blockBytes = 64;
/** Longest voterId (UTF-8 bytes) the scratch buffer takes; a longer one goes through createHmac. */
const voterIdBytesMax = 1024;

/**
 * Per salt: the HMAC key XOR ipad in front of a scratch area for the message, and the key XOR opad in front of
 * room for the inner digest. HMAC-SHA256(salt, voterId) = SHA-256(K^opad || SHA-256(K^ipad || voterId)), computed
 * with two one-shot hashes instead of a createHmac per vote (its key set-up and objects were ~5% of the dedupe
 * stage's CPU). Same bytes as createHmac (a unit test compares them).
 */
interface HmacPads {
  inner: Buffer;
  outer: Buffer;
}
const padsBySalt = new WeakMap<Buffer, HmacPads>();

function padsOf(salt: Buffer): HmacPads {
  let pads = padsBySalt.get(salt);
  if (pads === undefined) {
    const key = salt.length > blockBytes ? createHash('sha256').update(salt).digest() : salt;
    const inner = Buffer.alloc(blockBytes + voterIdBytesMax, 0x36);
    const outer = Buffer.alloc(blockBytes + 32, 0x5c);
    for (let i = 0; i < key.length; i++) {
      inner[i] = (key[i] as number) ^ 0x36;
      outer[i] = (key[i] as number) ^ 0x5c;
    }
    pads = { inner, outer };
    padsBySalt.set(salt, pads);
  }
  return pads;
}

export function pseudonymOf(salt: Buffer, voterId: string): string {
  if (voterId.length * 3 > voterIdBytesMax)
    return createHmac('sha256', salt).update(voterId).digest().subarray(0, pseudonymBytes).toString('base64url');
  const { inner, outer } = padsOf(salt);
  const n = inner.write(voterId, blockBytes, 'utf8');
  hash('sha256', inner.subarray(0, blockBytes + n), 'buffer').copy(outer, blockBytes);
  return hash('sha256', outer, 'buffer').subarray(0, pseudonymBytes).toString('base64url');
}

/** `a.b.c.0/24` → `a.b.0.0/16`; an IPv6 `x:y:z::/48` → `x:y::/32`; anything else → null (never passed on raw). */
export function coarseNetworkPrefix(prefix: string): string | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}\/\d{1,2}$/.exec(prefix);
  if (v4) return `${v4[1]}.${v4[2]}.0.0/16`;
  const v6 = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})(:[0-9a-f]{0,4})*::?\/\d{1,3}$/i.exec(prefix);
  if (v6) return `${v6[1]!.toLowerCase()}:${v6[2]!.toLowerCase()}::/32`;
  return null;
}

/** `votestream-sdk/1.4.2 (iOS 18)` → `votestream-sdk/1`; `Mozilla/5.0 (...)` → `Mozilla/5`; junk → null. */
export function clientFamilyOf(userAgent: string | null): string | null {
  if (!userAgent) return null;
  const m = /^([A-Za-z][A-Za-z0-9._-]{0,24})\/(\d{1,4})/.exec(userAgent.trim());
  if (!m) return null;
  return `${m[1]}/${m[2]}`.slice(0, clientFamilyCharsMax);
}

export function analyticsOf(d: VoteDecision, salt: Buffer): VoteAnalytics {
  const { vote } = d;
  return {
    pollId: vote.pollId,
    voterPseudonym: pseudonymOf(salt, vote.voterId),
    optionId: vote.optionId,
    counted: d.outcome === 'COUNTED',
    reason: d.reason,
    late: d.late,
    windowStart: d.windowStart,
    networkPrefix: coarseNetworkPrefix(vote.evidence.networkPrefix),
    clientFamily: clientFamilyOf(vote.evidence.userAgent),
    challengeSolved: vote.evidence.challenge === 'SOLVED',
  };
}
