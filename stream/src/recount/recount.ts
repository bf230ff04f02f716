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

/**
 * `resent`: the voter's counted vote appended again (ingest derives the voteId from the Idempotency-Key and
 * produces it again after a crash or a failed produce); the stream writes no decision for it, nor does it count.
 * `many-decisions`: decisions of a voteId beyond the log records that carry it (counted at the end).
 */
export type Verdict = 'match' | 'resent' | 'close-race' | 'finalisation' | 'differs' | 'no-decision' | 'many-decisions';

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
    resent: 0,
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
  /** Per voteId: decisions already matched to a log record (a voteId can be in the log more than once). */
  private readonly used = new Map<string, number>();
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
    const voteId = vote.voteId.toLowerCase();
    this.seen.add(voteId);

    // The recount's own decision, by the dedupe stage's rules.
    let reason = eligibilityOf(poll, vote.optionId, vote.receivedAt, this.finalised.has(partition));
    let countedVoteId: string | null = null;
    if (reason === null) {
      const first = this.counted.get(vote.voterId);
      if (first === voteId) {
        this.verdicts.resent++;
        return;
      }
      if (first !== undefined) {
        reason = 'DUPLICATE';
        countedVoteId = first;
      }
    }
    const mine: DecisionSummary = { outcome: reason === null ? 'COUNTED' : 'REJECTED', reason, countedVoteId };

    // This record's decision: the next one of its voteId not yet matched to an earlier record.
    const used = this.used.get(voteId) ?? 0;
    const first = this.input.decisions.get(voteId)?.[used];
    if (first) this.used.set(voteId, used + 1);
    const stream = first ? summaryOf(first) : null;
    let verdict: Verdict;
    let adopted = mine;
    if (!first || !stream) verdict = 'no-decision';
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
    if ((verdict === 'differs' || verdict === 'no-decision') && this.differences.length < differencesListedMax)
      this.differences.push({ voteId, voterId: vote.voterId, partition, offset, recount: mine, stream, verdict });
    if (adopted.outcome === 'COUNTED') {
      this.counted.set(vote.voterId, voteId);
      this.totals[vote.optionId] = (this.totals[vote.optionId] ?? 0) + 1;
    }
  }

  result(): RecountResult {
    let orphanDecisions = 0;
    const verdicts = { ...this.verdicts };
    const differences = [...this.differences];
    // The stream's own totals: every COUNTED decision it committed, matched to a log record or not.
    const decisionTotals = { ...this.decisionTotals };
    for (const [voteId, list] of this.input.decisions) {
      for (const d of list)
        if (d.outcome === 'COUNTED') decisionTotals[d.vote.optionId] = (decisionTotals[d.vote.optionId] ?? 0) + 1;
      if (!this.seen.has(voteId)) {
        orphanDecisions++;
        continue;
      }
      const extra = list.length - (this.used.get(voteId) ?? 0);
      if (extra <= 0) continue;
      verdicts['many-decisions'] += extra;
      const last = list[list.length - 1];
      if (last && differences.length < differencesListedMax)
        differences.push({
          voteId,
          voterId: last.vote.voterId,
          partition: -1,
          offset: '-',
          recount: { outcome: 'REJECTED', reason: null, countedVoteId: null },
          stream: summaryOf(last),
          verdict: 'many-decisions',
        });
    }
    return {
      pollId: this.input.pollId,
      votes: this.votes,
      totals: { ...this.totals },
      decisionTotals,
      verdicts,
      orphanDecisions,
      differences,
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
