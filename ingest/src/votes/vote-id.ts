import { createHash } from 'node:crypto';

/**
 * The voteId of a vote request: a name-based UUID (RFC 9562 version 8, SHA-256) of (pollId, voterId,
 * Idempotency-Key). A resend with the same key names the same vote whatever happened to the first attempt
 * (ingest killed after Kafka's ack, Redis lost the idempotency record): it can only ever be answered with this
 * voteId, and the stream's dedupe treats a second copy of the counted vote as a resend, not as another vote.
 * Not secret: anyone who knows the voter and the key can compute it, and nothing is authorised by it.
 */
export function voteIdOf(pollId: string, voterId: string, idempotencyKey: string): string {
  // Length-prefixed, so no two different triples hash the same input (a voterId may contain any character).
  const h = createHash('sha256')
    .update(`${pollId.length}:${pollId}${voterId.length}:${voterId}${idempotencyKey}`)
    .digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x80; // version 8
  h[8] = ((h[8] as number) & 0x3f) | 0x80; // variant 10
  const x = h.toString('hex', 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
