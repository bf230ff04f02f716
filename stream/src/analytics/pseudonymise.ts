import { createHmac } from 'node:crypto';
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

export function pseudonymOf(salt: Buffer, voterId: string): string {
  return createHmac('sha256', salt).update(voterId).digest().subarray(0, pseudonymBytes).toString('base64url');
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
