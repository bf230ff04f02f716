import { invariant } from '@votestream/runtime';
import type { PollDefinition } from '@votestream/schemas';

export type PollStatus = 'scheduled' | 'open' | 'closed';

/** Polls a catalog holds at most; a new poll beyond it is refused (ingest's POLLS_MAX stays 1,000 below). */
export const catalogPollsMax = 100_000;

/** The effective end of voting: min(closesAt, closedAt), or null while the poll is open-ended. */
export function closeTimeOf(poll: Pick<PollDefinition, 'closesAt' | 'closedAt'>): number | null {
  const { closesAt, closedAt } = poll;
  if (closesAt === null) return closedAt;
  if (closedAt === null) return closesAt;
  return Math.min(closesAt, closedAt);
}

/** Scheduled before `opensAt`, closed from the effective close time on (inclusive), open in between. */
export function pollStatus(poll: Pick<PollDefinition, 'opensAt' | 'closesAt' | 'closedAt'>, now: number): PollStatus {
  if (now < poll.opensAt) return 'scheduled';
  const closeAt = closeTimeOf(poll);
  return closeAt !== null && now >= closeAt ? 'closed' : 'open';
}

export interface CatalogEntry {
  poll: PollDefinition;
  /** Offset of the polls-topic record this entry came from; a record at or below it never changes the entry. */
  offset: number;
  /** Option ids, for the vote path's membership check. */
  optionIds: ReadonlySet<string>;
}

/**
 * The one merge rule of the catalog: what a poll event read at `offset` makes of the current entry (undefined
 * when the event changes nothing).
 *
 * - The definition from the highest offset wins. All events of one poll share a partition (key pollId), so the
 *   offset orders them; an event at or below the current offset is ignored. That makes ingest's local apply of
 *   its own admin write (read-your-writes) and the later consumption of that same record commute.
 * - The earliest close wins: closing is final. A later event never reopens a poll (closedAt back to null) nor
 *   moves its close later, so a vote decided as POLL_CLOSED stays rightly decided, and ingest and the stream
 *   agree on the close whichever of two racing CLOSED events they read last.
 */
export function mergePollEvent(
  current: CatalogEntry | undefined,
  poll: PollDefinition,
  offset: number,
): CatalogEntry | undefined {
  invariant(Number.isSafeInteger(offset) && offset >= 0, `poll event offset ${offset} is not a valid offset`);
  if (current !== undefined && current.offset >= offset) return undefined;
  let merged = poll;
  const prevClosed = current?.poll.closedAt ?? null;
  if (prevClosed !== null && (poll.closedAt === null || poll.closedAt > prevClosed)) {
    merged = { ...poll, closedAt: prevClosed };
  }
  return { poll: merged, offset, optionIds: new Set(merged.options.map((o) => o.id)) };
}
