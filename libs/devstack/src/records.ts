import { randomUUID } from 'node:crypto';
import type { VoteCast } from '@votestream/schemas';

/**
 * A VoteCast as ingest would write it for a voter with no proof of work required, for tests and benchmarks that
 * produce votes straight into the votes topic (key `pollId/voterId`, see voteKey).
 */
export function makeVote(pollId: string, voterId: string, optionId: string, receivedAt = Date.now()): VoteCast {
  return {
    voteId: randomUUID(),
    pollId,
    optionId,
    voterId,
    idempotencyKey: randomUUID(),
    castAt: null,
    receivedAt,
    evidence: {
      challenge: 'NOT_REQUIRED',
      challengeId: null,
      tokenId: null,
      networkPrefix: '127.0.0.0/24',
      userAgent: null,
      deviceId: null,
      attestation: null,
    },
  };
}
