import type { PollDefinition, RejectReason } from '@votestream/schemas';
import { closeTimeOf } from '../catalog.ts';

/**
 * Whether a vote may count in its poll, before the duplicate check: the rules the dedupe stage decides by and
 * the recount (stream/src/recount) replays. Null: eligible (then the voter's first vote in the poll counts).
 * `pollFinal`: this task already finalised the poll's partial tally (its watermark passed close + grace), after
 * which every vote is POLL_CLOSED whatever its event time.
 */
export function eligibilityOf(
  poll: PollDefinition | undefined,
  optionId: string,
  eventTime: number,
  pollFinal: boolean,
): RejectReason | null {
  if (!poll) return 'UNKNOWN_POLL';
  if (!poll.options.some((o) => o.id === optionId)) return 'UNKNOWN_OPTION';
  if (eventTime < poll.opensAt) return 'POLL_NOT_OPEN';
  const closeAt = closeTimeOf(poll);
  if ((closeAt !== null && eventTime >= closeAt) || pollFinal) return 'POLL_CLOSED';
  return null;
}
