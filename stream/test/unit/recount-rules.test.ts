// The recount's comparison logic without a broker: votes and decisions built in memory, each verdict exact.
import type { PollDefinition, VoteCast, VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { type LoggedVote, recount, recountAgrees } from '../../src/recount/recount.ts';
import { makePoll, makeVote } from '../support.ts';

const rules = { graceMs: 1000, idleTimeoutMs: 1000 };
const t0 = 1_800_000_000_000;

function decide(vote: VoteCast, over: Partial<VoteDecision> = {}): VoteDecision {
  return {
    vote,
    outcome: 'COUNTED',
    reason: null,
    countedVoteId: null,
    late: false,
    windowStart: 0,
    decidedAt: t0,
    ...over,
  };
}
function logged(votes: VoteCast[], partition = 0, timestamp = t0): LoggedVote[] {
  return votes.map((vote, i) => ({ partition, offset: String(i), timestamp, vote }));
}
function run(poll: PollDefinition, votes: LoggedVote[], decisions: VoteDecision[], pollEventTimestamp = t0) {
  const byVote = new Map<string, VoteDecision[]>();
  for (const d of decisions) byVote.set(d.vote.voteId, [...(byVote.get(d.vote.voteId) ?? []), d]);
  return recount({ pollId: poll.pollId, poll, pollEventTimestamp, votes, decisions: byVote, rules });
}

test('first vote per voter counts, later ones are duplicates naming it; matching decisions agree', (t) => {
  const poll = makePoll('p', ['yes', 'no'], { opensAt: t0 - 1000 });
  const [a, b, c] = [makeVote('p', 'v1', 'yes', t0), makeVote('p', 'v1', 'no', t0), makeVote('p', 'v2', 'no', t0)];
  const r = run(poll, logged([a!, b!, c!]), [
    decide(a!),
    decide(b!, { outcome: 'REJECTED', reason: 'DUPLICATE', countedVoteId: a!.voteId }),
    decide(c!),
  ]);
  t.deepEqual(r.totals, { yes: 1, no: 1 });
  t.is(r.verdicts.match, 3);
  t.true(recountAgrees(r));
});

test('a second vote the stream counted differs, and the decision totals disagree', (t) => {
  const poll = makePoll('p', ['yes', 'no'], { opensAt: t0 - 1000 });
  const [a, b] = [makeVote('p', 'v1', 'yes', t0), makeVote('p', 'v1', 'no', t0)];
  const r = run(poll, logged([a!, b!]), [decide(a!), decide(b!)]);
  t.is(r.verdicts.differs, 1);
  t.deepEqual(r.totals, { yes: 1, no: 0 });
  t.deepEqual(r.decisionTotals, { yes: 1, no: 1 });
  t.deepEqual(
    r.differences.map((d) => [d.voteId, d.recount.reason, d.stream?.outcome]),
    [[b!.voteId, 'DUPLICATE', 'COUNTED']],
  );
  t.false(recountAgrees(r));
});

test('a vote without a decision, and a decision without a vote, are differences', (t) => {
  const poll = makePoll('p', ['yes'], { opensAt: t0 - 1000 });
  const [a, ghost] = [makeVote('p', 'v1', 'yes', t0), makeVote('p', 'v9', 'yes', t0)];
  const r = run(poll, logged([a!]), [decide(ghost!)]);
  t.is(r.verdicts['no-decision'], 1);
  t.is(r.orphanDecisions, 1);
  t.false(recountAgrees(r));
});

test('a vote received after an admin close is explained only when the CLOSED event was appended after it', (t) => {
  const closedAt = t0 + 5000;
  const poll = makePoll('p', ['yes'], { opensAt: t0 - 1000, closedAt });
  const racer = makeVote('p', 'v1', 'yes', closedAt + 10);
  const votes = logged([racer], 0, closedAt + 20);
  const raced = run(poll, votes, [decide(racer)], closedAt + 30);
  t.is(raced.verdicts['close-race'], 1);
  t.deepEqual(raced.totals, { yes: 1 });
  t.true(recountAgrees(raced));
  // The CLOSED event was in the log before the vote: the stream had to know it, so counting was wrong.
  const wrong = run(poll, votes, [decide(racer)], closedAt + 5);
  t.is(wrong.verdicts.differs, 1);
  t.false(recountAgrees(wrong));
});

test('a vote before the close refused POLL_CLOSED is explained only once the task could have finalised', (t) => {
  const closesAt = t0 + 5000;
  const poll = makePoll('p', ['yes'], { opensAt: t0 - 1000, closesAt });
  const early = makeVote('p', 'v1', 'yes', closesAt - 100);
  const closed = { outcome: 'REJECTED' as const, reason: 'POLL_CLOSED' as const };
  // Decided after close + grace + idle timeout (the idle watermark could have finalised the poll).
  const idle = run(poll, logged([early]), [decide(early, { ...closed, decidedAt: closesAt + 2000 })]);
  t.is(idle.verdicts.finalisation, 1);
  t.true(recountAgrees(idle));
  // A vote of the same partition had already pushed the watermark past close + grace.
  const pusher = makeVote('p2', 'w', 'x', closesAt + 1500);
  const pushed = run(poll, logged([pusher, early]), [decide(early, { ...closed, decidedAt: closesAt })]);
  t.is(pushed.verdicts.finalisation, 1);
  // Neither: refusing it was wrong.
  const wrong = run(poll, logged([early]), [decide(early, { ...closed, decidedAt: closesAt + 500 })]);
  t.is(wrong.verdicts.differs, 1);
  t.false(recountAgrees(wrong));
});

test('the counted vote appended again (a resend) expects no decision; a second decision for one record is extra', (t) => {
  const poll = makePoll('p', ['yes'], { opensAt: t0 - 1000 });
  const a = makeVote('p', 'v1', 'yes', t0);
  const resent = logged([a, a]);
  const ok = run(poll, resent, [decide(a)]);
  t.deepEqual([ok.verdicts.match, ok.verdicts.resent], [1, 1]);
  t.deepEqual(ok.totals, { yes: 1 });
  t.true(recountAgrees(ok));
  // The stream decided the resend too (a second decision): one extra, and its totals count the vote twice.
  const twice = run(poll, resent, [decide(a), decide(a)]);
  t.is(twice.verdicts['many-decisions'], 1);
  t.deepEqual(twice.decisionTotals, { yes: 2 });
  t.deepEqual(
    twice.differences.map((d) => [d.voteId, d.verdict]),
    [[a.voteId, 'many-decisions']],
  );
  t.false(recountAgrees(twice));
});

test('a rejected vote appended twice gets a decision for each record', (t) => {
  const poll = makePoll('p', ['yes', 'no'], { opensAt: t0 - 1000 });
  const [a, b] = [makeVote('p', 'v1', 'yes', t0), makeVote('p', 'v1', 'no', t0)];
  const dup = () => decide(b, { outcome: 'REJECTED', reason: 'DUPLICATE', countedVoteId: a.voteId });
  const r = run(poll, logged([a, b, b]), [decide(a), dup(), dup()]);
  t.is(r.verdicts.match, 3);
  t.true(recountAgrees(r));
});
