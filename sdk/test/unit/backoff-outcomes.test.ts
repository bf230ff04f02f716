import test from 'ava';
import {
  backoffDelayMs,
  defaultRetryPolicy,
  nextDelayMs,
  parseRetryAfterMs,
  retryDelayWithinBudgetMs,
} from '../../src/backoff.ts';
import {
  classifyReceiptAnswer,
  classifyVoteAnswer,
  networkFailureStep,
  type VoteRequestContext,
  voteErrorCodes,
} from '../../src/outcomes.ts';

const policy = { retryDelayMsBase: 100, retryDelayMsMax: 5000, attemptsMax: 8, retryBudgetMs: 60_000 };

test('the retry rule of delivery and receipts: a wait while attempts and the wall-clock budget last, none after', (t) => {
  const half = () => 0.5;
  const at = (nowMs: number) => ({ startedAtMs: 1000, nowMs });
  // After attempt 1 (retry 0): full jitter in [0, 100); a Retry-After is honoured, plus a spread below 400 ms.
  t.is(retryDelayWithinBudgetMs(1, null, at(1000), policy, half), 50);
  t.is(retryDelayWithinBudgetMs(1, 2000, at(1000), policy, half), 2200);
  t.is(retryDelayWithinBudgetMs(4, null, at(1000), policy, half), 400);
  // attemptsMax (8) attempts made: no further wait.
  t.is(retryDelayWithinBudgetMs(7, null, at(1000), policy, half), 2500); // ceiling capped at retryDelayMsMax
  t.is(retryDelayWithinBudgetMs(8, null, at(1000), policy, half), null);
  // A wait that would end past retryBudgetMs (60 s after the start) is not started; one ending on it is.
  t.is(retryDelayWithinBudgetMs(1, 2000, at(1000 + 60_000 - 2200), policy, half), 2200);
  t.is(retryDelayWithinBudgetMs(1, 2000, at(1000 + 60_000 - 2199), policy, half), null);
});

test('full-jitter back-off: the ceiling doubles per retry up to retryDelayMsMax, and the wait spans [0, ceiling)', (t) => {
  const top = () => 0.999999;
  t.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 50].map((r) => backoffDelayMs(r, policy, top)),
    [99, 199, 399, 799, 1599, 3199, 4999, 4999],
  );
  t.is(
    backoffDelayMs(3, policy, () => 0),
    0,
  );
  t.is(
    backoffDelayMs(3, policy, () => 0.5),
    400,
  );
  t.is(
    backoffDelayMs(10_000, defaultRetryPolicy, () => 0.5),
    defaultRetryPolicy.retryDelayMsMax / 2,
  );
});

test('Retry-After is read as delta-seconds or as an HTTP-date; garbage is ignored', (t) => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  t.is(parseRetryAfterMs('3', now), 3000);
  t.is(parseRetryAfterMs(' 0 ', now), 0);
  t.is(parseRetryAfterMs('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000);
  t.is(parseRetryAfterMs('Tue, 31 Dec 2024 23:00:00 GMT', now), 0);
  t.is(parseRetryAfterMs('soon', now), null);
  t.is(parseRetryAfterMs('', now), null);
  t.is(parseRetryAfterMs(null, now), null);
});

test('a server Retry-After is honoured (never waited less), plus a little jitter, and capped by retryDelayMsMax', (t) => {
  t.is(
    nextDelayMs(0, 2000, policy, () => 0),
    2000,
  );
  t.is(
    nextDelayMs(0, 2000, policy, () => 0.5),
    2200,
  );
  t.is(
    nextDelayMs(0, 3_600_000, policy, () => 0),
    5000,
  );
  t.is(
    nextDelayMs(2, null, policy, () => 0.5),
    200,
  );
});

const ctx: VoteRequestContext = { pollId: 'p1', optionId: 'a', idempotencyKey: 'k-123456789', resent: false };
const problem = (
  status: number,
  code: string,
  extra: Record<string, unknown> = {},
  retryAfter: string | null = null,
) => ({
  status,
  retryAfter,
  body: {
    type: `https://votestream.dev/problems/${code}`,
    title: code,
    status,
    code,
    detail: `because ${code}`,
    ...extra,
  },
});

test('every documented error code of the vote API maps to its own typed outcome and next step', (t) => {
  const now = 0;
  const table: Record<string, { status: number; action: string; kind: string; retryAfter?: string }> = {
    invalid_body: { status: 400, action: 'done', kind: 'invalid_body' },
    unknown_option: { status: 400, action: 'done', kind: 'unknown_option' },
    unauthenticated: { status: 401, action: 'keep', kind: 'unauthenticated' },
    challenge_required: { status: 403, action: 'rechallenge', kind: 'challenge_required' },
    challenge_failed: { status: 403, action: 'rechallenge', kind: 'challenge_failed' },
    poll_not_found: { status: 404, action: 'done', kind: 'poll_not_found' },
    already_voted: { status: 409, action: 'done', kind: 'already_voted' },
    poll_not_open: { status: 409, action: 'done', kind: 'poll_not_open' },
    poll_closed: { status: 409, action: 'done', kind: 'poll_closed' },
    idempotency_key_reused: { status: 422, action: 'done', kind: 'idempotency_key_reused' },
    rate_limited: { status: 429, action: 'retry', kind: 'rate_limited', retryAfter: '7' },
    unavailable: { status: 503, action: 'retry', kind: 'unavailable', retryAfter: '2' },
  };
  t.deepEqual(Object.keys(table).sort(), [...voteErrorCodes].sort());
  for (const [code, want] of Object.entries(table)) {
    const step = classifyVoteAnswer(ctx, problem(want.status, code, {}, want.retryAfter ?? null), now);
    t.is<string, string>(step.action, want.action, code);
    t.is<string, string>(step.outcome.kind, want.kind, code);
    if (step.action === 'retry') t.is(step.retryAfterMs, Number(want.retryAfter) * 1000, code);
  }
});

test('already_voted carries the voteId that counts', (t) => {
  const step = classifyVoteAnswer(ctx, problem(409, 'already_voted', { voteId: 'v-first' }), 0);
  t.deepEqual(step, {
    action: 'done',
    outcome: { kind: 'already_voted', pollId: 'p1', voteId: 'v-first', detail: 'because already_voted' },
  });
});

test('a 202 is accepted with the server voteId; a resend that gets a 202 is marked replayed', (t) => {
  const body = { voteId: 'v1', pollId: 'p1', optionId: 'a', status: 'accepted' };
  t.deepEqual(classifyVoteAnswer(ctx, { status: 202, retryAfter: null, body }, 0), {
    action: 'done',
    outcome: {
      kind: 'accepted',
      pollId: 'p1',
      optionId: 'a',
      voteId: 'v1',
      idempotencyKey: 'k-123456789',
      replayed: false,
      confirmedBy: 'answer',
    },
  });
  const resent = classifyVoteAnswer({ ...ctx, resent: true }, { status: 202, retryAfter: null, body }, 0);
  t.true(resent.outcome.kind === 'accepted' && resent.outcome.replayed);
});

test('answers without a problem body are classified by status; 5xx is retried, an unknown 4xx is final', (t) => {
  const html = (status: number, retryAfter: string | null = null) => ({ status, retryAfter, body: null });
  t.like(classifyVoteAnswer(ctx, html(503, '3'), 0), {
    action: 'retry',
    retryAfterMs: 3000,
    outcome: { kind: 'unavailable' },
  });
  t.like(classifyVoteAnswer(ctx, html(429), 0), {
    action: 'retry',
    retryAfterMs: null,
    outcome: { kind: 'rate_limited' },
  });
  t.like(classifyVoteAnswer(ctx, html(502), 0), { action: 'retry', outcome: { kind: 'server_error', queued: true } });
  t.like(classifyVoteAnswer(ctx, html(500), 0), { action: 'retry', outcome: { kind: 'server_error' } });
  t.like(classifyVoteAnswer(ctx, html(401), 0), { action: 'keep', outcome: { kind: 'unauthenticated' } });
  t.like(classifyVoteAnswer(ctx, html(418), 0), {
    action: 'done',
    outcome: { kind: 'unexpected_response', status: 418, queued: false },
  });
  t.like(classifyVoteAnswer(ctx, { status: 202, retryAfter: null, body: {} }, 0), {
    action: 'retry',
    outcome: { kind: 'unexpected_response', queued: true },
  });
  t.like(networkFailureStep(ctx, new TypeError('fetch failed')), {
    action: 'retry',
    outcome: { kind: 'network_error', queued: true },
  });
});

test('receipt answers: counted, pending, rejected with reason, no_vote, and transient errors', (t) => {
  const ok = (status: string, reason: string | null = null) => ({
    status: 200,
    retryAfter: null,
    body: { voteId: 'v1', optionId: 'a', status, reason },
  });
  t.deepEqual(classifyReceiptAnswer('p1', ok('counted'), false, 0), {
    action: 'done',
    outcome: { kind: 'receipt', pollId: 'p1', voteId: 'v1', optionId: 'a', status: 'counted', reason: null },
  });
  t.like(classifyReceiptAnswer('p1', ok('rejected', 'DUPLICATE'), false, 0), {
    outcome: { status: 'rejected', reason: 'DUPLICATE' },
  });
  t.like(classifyReceiptAnswer('p1', ok('weird'), false, 0), { outcome: { kind: 'unexpected_response' } });
  t.deepEqual(classifyReceiptAnswer('p1', problem(404, 'no_vote'), true, 0), {
    action: 'done',
    outcome: { kind: 'no_vote', pollId: 'p1', queuedInOutbox: true },
  });
  t.like(classifyReceiptAnswer('p1', problem(404, 'poll_not_found'), false, 0), {
    outcome: { kind: 'poll_not_found' },
  });
  t.like(classifyReceiptAnswer('p1', problem(503, 'unavailable', {}, '2'), false, 0), {
    action: 'retry',
    retryAfterMs: 2000,
  });
});
