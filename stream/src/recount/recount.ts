import type { PollDefinition, RejectReason, VoteCast, VoteDecision } from '@votestream/schemas';
import { closeTimeOf } from '../catalog.ts';
import { eligibilityOf } from '../processors/vote-rules.ts';

/**
 * The recount: a poll's result recomputed from the immutable `votes` log by the dedupe stage's own rules
 * (`eligibilityOf`, then first vote per voter per poll wins), independent of the stream's state stores, and
 * checked vote by vote against the decisions the stream committed. Pure: the CLI (stream/src/tools/recount.ts)
 * reads the topics and the read models and prints the comparison.
 *
 * Two rules of the stream depend on when a record was processed, not only on the log, so the recount cannot
 * decide them alone; where the log says the stream's decision was one of the two it could have made, the
 * recount accepts it, says so, and carries on from the stream's choice:
 * - close race: ingest appended a vote received at or after an admin's close (`closedAt`) before the CLOSED
 *   event reached the polls topic (its record timestamp is later than the vote's), so the stream's catalog
 *   may not have known the close yet and counted the vote;
 * - finalisation: once a task's watermark passes close + grace (driven by every vote of its partition, or by
 *   the idle clock: decidedAt >= close + grace + idle timeout), the next punctuation finalises the poll and
 *   every later vote is POLL_CLOSED, even one whose event time is before the close.
 */

/** One record of the votes topic: where it is, when it was appended (record timestamp) and what it holds. */
export interface LoggedVote {
  partition: number;
  offset: string;
  /** The record's timestamp (the producer's create time: ingest's clock when it appended the vote). */
  timestamp: number;
  vote: VoteCast;
}

export interface RecountRules {
  /** The stream's STREAM_GRACE_MS. */
  graceMs: number;
  /** The stream's STREAM_IDLE_TIMEOUT_MS. */
  idleTimeoutMs: number;
}

export interface RecountInput {
  pollId: string;
  /** The poll's definition as the polls topic holds it now (the compacted, latest event), if any. */
  poll: PollDefinition | undefined;
  /** Record timestamp of that latest poll event (for the close race). */
  pollEventTimestamp: number;
  /** Every record of the votes topic (all polls: the watermark of a partition is driven by all of them), in
   * offset order within each partition. */
  votes: Iterable<LoggedVote>;
  /** Every decision of this poll the stream committed (read_committed), by voteId. */
  decisions: ReadonlyMap<string, readonly VoteDecision[]>;
  rules: RecountRules;
}

export type Verdict = 'match' | 'close-race' | 'finalisation' | 'differs' | 'no-decision' | 'many-decisions';

/** A decision as the recount compares it. */
export interface DecisionSummary {
  outcome: 'COUNTED' | 'REJECTED';
  reason: RejectReason | null;
  countedVoteId: string | null;
}

export interface VoteCheck {
  voteId: string;
  voterId: string;
  partition: number;
  offset: string;
  recount: DecisionSummary;
  stream: DecisionSummary | null;
  verdict: Verdict;
}

export interface RecountResult {
  pollId: string;
  /** Votes of this poll in the log. */
  votes: number;
  /** Counted votes per option as the recount decides them (every option of the poll, 0 included). */
  totals: Record<string, number>;
  /** Counted votes per option by the stream's decisions. */
  decisionTotals: Record<string, number>;
  /** Votes by verdict. */
  verdicts: Record<Verdict, number>;
  /** Decisions of this poll whose vote is not in the log. */
  orphanDecisions: number;
  /** The checks that are neither a match nor explained, at most `differencesListedMax`. */
  differences: VoteCheck[];
}

/** At most this many differing votes are listed (all are counted in `verdicts`). */
export const differencesListedMax = 50;

const same = (a: DecisionSummary, b: DecisionSummary) =>
  a.outcome === b.outcome && a.reason === b.reason && a.countedVoteId === b.countedVoteId;

function summaryOf(d: VoteDecision): DecisionSummary {
  return { outcome: d.outcome, reason: d.reason, countedVoteId: d.countedVoteId };
}

/**
 * Replays the votes log one record at a time (records of one partition in offset order; partitions may
 * interleave), so a topic of any size is recounted in memory bounded by the poll's voters.
 */
export class Recounter {
  private readonly closeAt: number | null;
  private readonly totals: Record<string, number> = {};
  private readonly decisionTotals: Record<string, number> = {};
  private readonly verdicts: Record<Verdict, number> = {
    match: 0,
    'close-race': 0,
    finalisation: 0,
    differs: 0,
    'no-decision': 0,
    'many-decisions': 0,
  };
  private readonly differences: VoteCheck[] = [];
  /** Per partition: the highest event time seen (the task's watermark, without the idle clock). */
  private readonly watermark = new Map<number, number>();
  /** Partitions where the stream has shown that it finalised this poll. */
  private readonly finalised = new Set<number>();
  /** Per voter: the voteId that counts. */
  private readonly counted = new Map<string, string>();
  private readonly seen = new Set<string>();
  private votes = 0;

  constructor(private readonly input: Omit<RecountInput, 'votes'>) {
    this.closeAt = input.poll ? closeTimeOf(input.poll) : null;
    for (const o of input.poll?.options ?? []) {
      this.totals[o.id] = 0;
      this.decisionTotals[o.id] = 0;
    }
  }

  offer({ partition, offset, timestamp, vote }: LoggedVote): void {
    const { pollId, poll, rules } = this.input;
    const before = this.watermark.get(partition) ?? 0;
    if (vote.receivedAt > before) this.watermark.set(partition, vote.receivedAt);
    if (vote.pollId !== pollId) return;
    this.votes++;
    this.seen.add(vote.voteId);

    // The recount's own decision, by the dedupe stage's rules.
    let reason = eligibilityOf(poll, vote.optionId, vote.receivedAt, this.finalised.has(partition));
    let countedVoteId: string | null = null;
    if (reason === null) {
      const first = this.counted.get(vote.voterId);
      if (first !== undefined) {
        reason = 'DUPLICATE';
        countedVoteId = first;
      }
    }
    const mine: DecisionSummary = { outcome: reason === null ? 'COUNTED' : 'REJECTED', reason, countedVoteId };

    const theirs = this.input.decisions.get(vote.voteId) ?? [];
    const first = theirs[0];
    const stream = first ? summaryOf(first) : null;
    let verdict: Verdict;
    let adopted = mine;
    if (!first || !stream) verdict = 'no-decision';
    else if (theirs.length > 1) verdict = 'many-decisions';
    else if (same(mine, stream)) verdict = 'match';
    else if (
      stream.outcome === 'COUNTED' &&
      reason === 'POLL_CLOSED' &&
      poll?.closedAt != null &&
      vote.receivedAt >= poll.closedAt &&
      (poll.closesAt === null || vote.receivedAt < poll.closesAt) &&
      this.input.pollEventTimestamp >= timestamp &&
      !this.counted.has(vote.voterId)
    ) {
      verdict = 'close-race';
      adopted = stream;
    } else if (
      stream.reason === 'POLL_CLOSED' &&
      this.closeAt !== null &&
      vote.receivedAt < this.closeAt &&
      (before >= this.closeAt + rules.graceMs || first.decidedAt >= this.closeAt + rules.graceMs + rules.idleTimeoutMs)
    ) {
      verdict = 'finalisation';
      adopted = stream;
      this.finalised.add(partition);
    } else verdict = 'differs';

    this.verdicts[verdict]++;
    if (
      (verdict === 'differs' || verdict === 'no-decision' || verdict === 'many-decisions') &&
      this.differences.length < differencesListedMax
    )
      this.differences.push({
        voteId: vote.voteId,
        voterId: vote.voterId,
        partition,
        offset,
        recount: mine,
        stream,
        verdict,
      });
    if (adopted.outcome === 'COUNTED') {
      this.counted.set(vote.voterId, vote.voteId);
      this.totals[vote.optionId] = (this.totals[vote.optionId] ?? 0) + 1;
    }
    for (const d of theirs)
      if (d.outcome === 'COUNTED') this.decisionTotals[vote.optionId] = (this.decisionTotals[vote.optionId] ?? 0) + 1;
  }

  result(): RecountResult {
    let orphanDecisions = 0;
    for (const voteId of this.input.decisions.keys()) if (!this.seen.has(voteId)) orphanDecisions++;
    return {
      pollId: this.input.pollId,
      votes: this.votes,
      totals: { ...this.totals },
      decisionTotals: { ...this.decisionTotals },
      verdicts: { ...this.verdicts },
      orphanDecisions,
      differences: [...this.differences],
    };
  }
}

export function recount(input: RecountInput): RecountResult {
  const r = new Recounter(input);
  for (const v of input.votes) r.offer(v);
  return r.result();
}

/** Options whose counts differ between two tallies (a missing option counts 0). */
export function totalsDiffer(a: Record<string, number>, b: Record<string, number>): string[] {
  const options = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...options].filter((o) => (a[o] ?? 0) !== (b[o] ?? 0)).sort();
}

/** True when the recount found nothing it cannot explain. */
export function recountAgrees(r: RecountResult): boolean {
  return (
    r.verdicts.differs === 0 &&
    r.verdicts['no-decision'] === 0 &&
    r.verdicts['many-decisions'] === 0 &&
    r.orphanDecisions === 0 &&
    totalsDiffer(r.totals, r.decisionTotals).length === 0
  );
}
