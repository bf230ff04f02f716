/**
 * Typed outcomes of the ingest HTTP API (issue 4, v1): every documented error code becomes one member of a
 * discriminated union, so an app handles them with a `switch (outcome.kind)` the compiler checks for
 * exhaustiveness. This module is pure: it turns (status, headers, body) into a decision; the client acts on it.
 */

import { parseRetryAfterMs } from './backoff.ts';

/** Every `code` the vote endpoint documents (RFC 9457 problem+json `code` member). */
export const voteErrorCodes = [
  'invalid_body',
  'unknown_option',
  'unauthenticated',
  'challenge_required',
  'challenge_failed',
  'poll_not_found',
  'already_voted',
  'poll_not_open',
  'poll_closed',
  'idempotency_key_reused',
  'rate_limited',
  'unavailable',
] as const;
export type VoteErrorCode = (typeof voteErrorCodes)[number];

/** Refusals that are final for this vote: resending the same vote can never succeed, so it leaves the outbox. */
export type RefusalKind =
  | 'invalid_body'
  | 'unknown_option'
  | 'poll_not_found'
  | 'poll_not_open'
  | 'poll_closed'
  | 'idempotency_key_reused'
  | 'challenge_required'
  | 'challenge_failed';

/** Transient conditions: the vote stays in the outbox and `flushOutbox()` resends it with the same Idempotency-Key. */
export type TransientKind = 'rate_limited' | 'unavailable' | 'network_error' | 'server_error';

export type VoteOutcome =
  /**
   * The vote is durable in Kafka. `replayed`: the answer came to a resend. `confirmedBy: 'answer'` is ingest's 202;
   * `'receipt'` means a resend was refused (`poll_closed` or `already_voted`: ingest checks the poll before the
   * idempotency record) and the voter's receipt showed this very option already COUNTED, i.e. an earlier attempt
   * whose answer was lost went through.
   */
  | {
      kind: 'accepted';
      pollId: string;
      optionId: string;
      voteId: string;
      idempotencyKey: string;
      replayed: boolean;
      confirmedBy: 'answer' | 'receipt';
    }
  /** This voter already has a vote in this poll. `voteId` is the vote that counts, when ingest names it. */
  | { kind: 'already_voted'; pollId: string; voteId: string | null; detail: string }
  | { kind: RefusalKind; pollId: string; status: number; detail: string }
  /** The token was missing, expired or refused. The vote stays queued: sign in again, then `flushOutbox()`. */
  | { kind: 'unauthenticated'; pollId: string; detail: string; queued: true }
  /** Retries ran out of attempts or time; the vote is queued and is resent by `flushOutbox()` with the same key. */
  | { kind: TransientKind; pollId: string; detail: string; queued: true; retryAfterMs: number | null }
  /** The proof of work could not be solved (timeout, unsupported algorithm, malformed challenge). Still queued. */
  | { kind: 'challenge_unsolved'; pollId: string; detail: string; queued: true }
  /** A different option for this poll is still waiting in the outbox; one vote per voter per poll. */
  | { kind: 'pending_vote_exists'; pollId: string; pendingOptionId: string }
  /** The outbox already holds `outboxEntriesMax` unacknowledged votes; nothing was sent. */
  | { kind: 'outbox_full'; pollId: string; entriesMax: number }
  /** A queued vote older than `outboxEntryTtlMs` was dropped without an acknowledgement. */
  | { kind: 'expired'; pollId: string; optionId: string; idempotencyKey: string }
  /** The server answered something the v1 contract does not describe. Queued when a resend is safe (5xx/2xx). */
  | {
      kind: 'unexpected_response';
      pollId: string;
      status: number;
      code: string | null;
      detail: string;
      queued: boolean;
    };

export type VoteOutcomeKind = VoteOutcome['kind'];

/** RFC 9457 problem details, as far as the SDK reads them. */
export interface Problem {
  code: string | null;
  detail: string;
  /** `already_voted` names the voter's existing vote. */
  voteId: string | null;
}

/** Reads a problem+json (or any JSON) body defensively: a proxy's HTML error page must not throw. */
export function parseProblem(body: unknown, status: number): Problem {
  const o = isRecord(body) ? body : {};
  const code = typeof o.code === 'string' ? o.code : null;
  const detail = typeof o.detail === 'string' ? o.detail : typeof o.title === 'string' ? o.title : `HTTP ${status}`;
  const voteId =
    typeof o.voteId === 'string' ? o.voteId : typeof o.existingVoteId === 'string' ? o.existingVoteId : null;
  return { code, detail, voteId };
}

/** What the client does next with one vote after one HTTP answer (or a network failure). */
export type VoteStep =
  /** Final: remove the vote from the outbox and return this outcome. */
  | { action: 'done'; outcome: VoteOutcome }
  /** Final for this call, but keep the vote in the outbox (e.g. the token must be refreshed first). */
  | { action: 'keep'; outcome: VoteOutcome }
  /** The proof of work was refused (expired, or already spent by an attempt whose answer was lost): solve a fresh one. */
  | { action: 'rechallenge'; outcome: VoteOutcome }
  /** Transient: wait (Retry-After when given) and resend with the same Idempotency-Key. */
  | { action: 'retry'; outcome: VoteOutcome; retryAfterMs: number | null };

export interface VoteRequestContext {
  pollId: string;
  optionId: string;
  idempotencyKey: string;
  /** True when an earlier attempt of this vote may have reached the server (its answer was lost). */
  resent: boolean;
}

export interface HttpAnswer {
  status: number;
  retryAfter: string | null;
  body: unknown;
}

/** Maps one answer of `POST /v1/polls/{pollId}/votes` to the next step. */
export function classifyVoteAnswer(ctx: VoteRequestContext, answer: HttpAnswer, nowMs: number): VoteStep {
  const { pollId } = ctx;
  const { status } = answer;
  if (status === 202 || status === 200 || status === 201) {
    const b = isRecord(answer.body) ? answer.body : {};
    if (typeof b.voteId === 'string' && b.voteId !== '') {
      return {
        action: 'done',
        outcome: {
          kind: 'accepted',
          pollId,
          optionId: typeof b.optionId === 'string' ? b.optionId : ctx.optionId,
          voteId: b.voteId,
          idempotencyKey: ctx.idempotencyKey,
          replayed: ctx.resent,
          confirmedBy: 'answer',
        },
      };
    }
    // A 2xx without a voteId is not the contract; resending with the same key is safe and should yield the real answer.
    return retry(
      { kind: 'unexpected_response', pollId, status, code: null, detail: '2xx without voteId', queued: true },
      null,
    );
  }
  const problem = parseProblem(answer.body, status);
  const retryAfterMs = parseRetryAfterMs(answer.retryAfter, nowMs);
  const code = problem.code ?? codeFromStatus(status);
  switch (code) {
    case 'already_voted':
      return {
        action: 'done',
        outcome: { kind: 'already_voted', pollId, voteId: problem.voteId, detail: problem.detail },
      };
    case 'invalid_body':
    case 'unknown_option':
    case 'poll_not_found':
    case 'poll_not_open':
    case 'poll_closed':
    case 'idempotency_key_reused':
      return { action: 'done', outcome: { kind: code, pollId, status, detail: problem.detail } };
    case 'challenge_required':
    case 'challenge_failed':
      return { action: 'rechallenge', outcome: { kind: code, pollId, status, detail: problem.detail } };
    case 'unauthenticated':
      return { action: 'keep', outcome: { kind: 'unauthenticated', pollId, detail: problem.detail, queued: true } };
    case 'rate_limited':
    case 'unavailable':
      return retry({ kind: code, pollId, detail: problem.detail, queued: true, retryAfterMs }, retryAfterMs);
    default:
      break;
  }
  if (status >= 500) {
    // 500/502/504 (a load balancer without a healthy target, a crash mid-request): the vote may or may not have
    // been taken, which is exactly what the Idempotency-Key makes safe to retry.
    return retry({ kind: 'server_error', pollId, detail: problem.detail, queued: true, retryAfterMs }, retryAfterMs);
  }
  return {
    action: 'done',
    outcome: { kind: 'unexpected_response', pollId, status, code: problem.code, detail: problem.detail, queued: false },
  };
}

/** A network failure (DNS, reset, timeout): the request may or may not have arrived; resend with the same key. */
export function networkFailureStep(ctx: VoteRequestContext, error: unknown): VoteStep {
  return retry(
    { kind: 'network_error', pollId: ctx.pollId, detail: describeError(error), queued: true, retryAfterMs: null },
    null,
  );
}

/** For answers whose body lacks a `code` (a proxy in between, an old server): the status alone decides. */
function codeFromStatus(status: number): string | null {
  switch (status) {
    case 401:
      return 'unauthenticated';
    case 404:
      return 'poll_not_found';
    case 429:
      return 'rate_limited';
    case 503:
      return 'unavailable';
    default:
      return null;
  }
}

function retry(outcome: VoteOutcome, retryAfterMs: number | null): VoteStep {
  return { action: 'retry', outcome, retryAfterMs };
}

export type ReceiptStatus = 'pending' | 'counted' | 'rejected';

export type ReceiptOutcome =
  /** The ballot receipt: `counted` once the stream has put the vote in the tally; `rejected` with a reason otherwise. */
  | {
      kind: 'receipt';
      pollId: string;
      voteId: string;
      optionId: string;
      status: ReceiptStatus;
      reason: string | null;
    }
  /** The server has no vote from this voter; `queuedInOutbox` tells whether one is still waiting on this device. */
  | { kind: 'no_vote'; pollId: string; queuedInOutbox: boolean }
  | { kind: 'unauthenticated' | 'poll_not_found'; pollId: string; detail: string }
  | { kind: TransientKind; pollId: string; detail: string; retryAfterMs: number | null }
  | { kind: 'unexpected_response'; pollId: string; status: number; code: string | null; detail: string };

export type ReceiptStep =
  | { action: 'done'; outcome: ReceiptOutcome }
  | { action: 'retry'; outcome: ReceiptOutcome; retryAfterMs: number | null };

const receiptStatuses: readonly string[] = ['pending', 'counted', 'rejected'];

/** Maps one answer of `GET /v1/polls/{pollId}/votes/me`. */
export function classifyReceiptAnswer(
  pollId: string,
  answer: HttpAnswer,
  queuedInOutbox: boolean,
  nowMs: number,
): ReceiptStep {
  const { status } = answer;
  if (status === 200) {
    const b = isRecord(answer.body) ? answer.body : {};
    if (
      typeof b.voteId === 'string' &&
      typeof b.optionId === 'string' &&
      typeof b.status === 'string' &&
      receiptStatuses.includes(b.status)
    ) {
      return {
        action: 'done',
        outcome: {
          kind: 'receipt',
          pollId,
          voteId: b.voteId,
          optionId: b.optionId,
          status: b.status as ReceiptStatus,
          reason: typeof b.reason === 'string' ? b.reason : null,
        },
      };
    }
    return {
      action: 'done',
      outcome: { kind: 'unexpected_response', pollId, status, code: null, detail: 'malformed receipt' },
    };
  }
  const problem = parseProblem(answer.body, status);
  const retryAfterMs = parseRetryAfterMs(answer.retryAfter, nowMs);
  const code = problem.code ?? (status === 404 ? 'no_vote' : codeFromStatus(status));
  switch (code) {
    case 'no_vote':
      return { action: 'done', outcome: { kind: 'no_vote', pollId, queuedInOutbox } };
    case 'unauthenticated':
    case 'poll_not_found':
      return { action: 'done', outcome: { kind: code, pollId, detail: problem.detail } };
    case 'rate_limited':
    case 'unavailable':
      return { action: 'retry', outcome: { kind: code, pollId, detail: problem.detail, retryAfterMs }, retryAfterMs };
    default:
      break;
  }
  if (status >= 500) {
    return {
      action: 'retry',
      outcome: { kind: 'server_error', pollId, detail: problem.detail, retryAfterMs },
      retryAfterMs,
    };
  }
  return {
    action: 'done',
    outcome: { kind: 'unexpected_response', pollId, status, code: problem.code, detail: problem.detail },
  };
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const causeText = cause instanceof Error ? `: ${cause.message}` : '';
    return `${error.name}: ${error.message}${causeText}`;
  }
  return String(error);
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
