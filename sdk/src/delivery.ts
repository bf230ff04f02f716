/**
 * The delivery of one queued vote: fetch and solve a challenge (bound to this voter and poll), POST with the
 * entry's Idempotency-Key, and on a transient failure wait and resend with the same key (`retryDelayWithinBudgetMs`);
 * a refused proof of work is solved afresh a bounded number of times. The entry leaves the outbox only on a final
 * answer; every state change is written to the outbox before the request it guards.
 */
import { type RetryPolicy, retryDelayWithinBudgetMs, sleep } from './backoff.ts';
import { type ApiRequest, getWithToken, jsonContentType, receiptPath } from './http.ts';
import type { Outbox, OutboxEntry } from './outbox.ts';
import {
  classifyReceiptAnswer,
  classifyVoteAnswer,
  describeError,
  type HttpAnswer,
  networkFailureStep,
  type VoteOutcome,
  type VoteRequestContext,
  type VoteStep,
} from './outcomes.ts';
import {
  type ChallengeSolver,
  ChallengeUnsolvedError,
  encodeAltchaPayload,
  parseChallenge,
  type SolveProgress,
} from './pow.ts';

export type VoteProgress =
  | { phase: 'challenge'; pollId: string }
  | ({ phase: 'solving'; pollId: string } & SolveProgress)
  | { phase: 'sending'; pollId: string; attempt: number }
  | { phase: 'waiting'; pollId: string; attempt: number; delayMs: number; reason: string };

export interface DeliveryOptions {
  request: ApiRequest;
  outbox: Outbox;
  getToken: () => string | Promise<string>;
  getAttestation?: (request: { pollId: string; optionId: string }) => string | null | Promise<string | null>;
  solver: ChallengeSolver;
  onProgress?: (progress: VoteProgress) => void;
  policy: RetryPolicy;
  /** Fresh challenges solved for one vote when the server refuses a proof of work. */
  rechallengesMax: number;
  random: () => number;
  now: () => number;
}

/** The retry loop for one outbox entry. Never throws for HTTP or network trouble; only for an abort. */
export type Deliver = (entry: OutboxEntry, signal: AbortSignal | undefined) => Promise<VoteOutcome>;

export function createDelivery(o: DeliveryOptions): Deliver {
  const { request, outbox, policy, now } = o;

  async function attestationFor(pollId: string, optionId: string): Promise<string | null> {
    if (o.getAttestation === undefined) return null;
    try {
      const a = await o.getAttestation({ pollId, optionId });
      return typeof a === 'string' && a !== '' ? a : null;
    } catch {
      return null; // the platform's attestation service is down: vote without (the server records none)
    }
  }

  /** Fetches and solves a challenge; returns the X-Altcha value, or the step to take when that failed. */
  async function solveFresh(ctx: VoteRequestContext, signal: AbortSignal | undefined): Promise<string | VoteStep> {
    o.onProgress?.({ phase: 'challenge', pollId: ctx.pollId });
    let answer: HttpAnswer;
    try {
      answer = await getWithToken(
        request,
        await o.getToken(),
        `/v1/challenge?pollId=${encodeURIComponent(ctx.pollId)}`,
        signal,
      );
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      return networkFailureStep(ctx, error);
    }
    if (answer.status !== 200) {
      const step = classifyVoteAnswer(ctx, answer, now());
      // The challenge endpoint answers for the vote in three cases: a transient failure (retry), a token it refused
      // (kept until sign-in), a poll that does not exist (final). Anything else is not a verdict on the vote: keep it.
      if (
        step.action === 'retry' ||
        step.outcome.kind === 'unauthenticated' ||
        step.outcome.kind === 'poll_not_found'
      ) {
        return step;
      }
      return { action: 'keep', outcome: unexpectedChallengeAnswer(ctx, answer) };
    }
    try {
      const challenge = parseChallenge(answer.body);
      const solution = await o.solver.solve(challenge, {
        signal,
        onProgress: (p) => o.onProgress?.({ phase: 'solving', pollId: ctx.pollId, ...p }),
      });
      return encodeAltchaPayload(challenge, solution);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const detail =
        error instanceof ChallengeUnsolvedError ? `${error.reason}: ${error.message}` : describeError(error);
      return { action: 'keep', outcome: { kind: 'challenge_unsolved', pollId: ctx.pollId, detail, queued: true } };
    }
  }

  /**
   * A resend refused with poll_closed or already_voted may be the echo of our own earlier attempt whose 202 was lost.
   * One receipt read settles it: COUNTED with this option means that attempt went through. PENDING is not proof (a
   * guard can outlive an ingest crash between admission and the Kafka acknowledgement), so it keeps the refusal.
   */
  async function confirmLostAnswer(
    entry: OutboxEntry,
    outcome: VoteOutcome,
    signal: AbortSignal | undefined,
  ): Promise<VoteOutcome> {
    if (outcome.kind !== 'poll_closed' && outcome.kind !== 'already_voted') return outcome;
    try {
      const answer = await getWithToken(request, await o.getToken(), receiptPath(entry.pollId), signal);
      const step = classifyReceiptAnswer(entry.pollId, answer, true, now());
      const r = step.outcome;
      if (r.kind === 'receipt' && r.status === 'counted' && r.optionId === entry.optionId) {
        return {
          kind: 'accepted',
          pollId: entry.pollId,
          optionId: entry.optionId,
          voteId: r.voteId,
          idempotencyKey: entry.idempotencyKey,
          replayed: true,
          confirmedBy: 'receipt',
        };
      }
    } catch {
      if (signal?.aborted) throw signal.reason;
      // The receipt could not be read: the refusal stands; nothing is claimed that was not seen.
    }
    return outcome;
  }

  return async (initial, signal) => {
    let entry = initial;
    const startedAtMs = now();
    let attempt = 0;
    let rechallenges = 0;
    const path = `/v1/polls/${encodeURIComponent(entry.pollId)}/votes`;
    const body = JSON.stringify({ optionId: entry.optionId });
    for (;;) {
      const ctx: VoteRequestContext = {
        pollId: entry.pollId,
        optionId: entry.optionId,
        idempotencyKey: entry.idempotencyKey,
        resent: entry.sent,
      };
      let step: VoteStep;
      if (entry.altcha === null) {
        const solved = await solveFresh(ctx, signal);
        if (typeof solved === 'string') {
          entry = { ...entry, altcha: solved };
          await outbox.update(entry);
          continue;
        }
        step = solved;
      } else {
        const altcha = entry.altcha;
        attempt++;
        o.onProgress?.({ phase: 'sending', pollId: entry.pollId, attempt });
        if (!entry.sent) {
          // Recorded before sending: from now on a resend may meet the server's memory of this key.
          entry = { ...entry, sent: true };
          await outbox.update(entry);
        }
        try {
          const token = await o.getToken();
          const attestation = await attestationFor(entry.pollId, entry.optionId);
          const answer = await request(
            'POST',
            path,
            {
              authorization: `Bearer ${token}`,
              'content-type': jsonContentType,
              accept: jsonContentType,
              'idempotency-key': entry.idempotencyKey,
              'x-altcha': altcha,
              ...(attestation === null ? {} : { 'x-votestream-attestation': attestation }),
            },
            body,
            signal,
          );
          step = classifyVoteAnswer(ctx, answer, now());
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          step = networkFailureStep(ctx, error);
        }
      }
      switch (step.action) {
        case 'done': {
          const outcome = entry.sent ? await confirmLostAnswer(entry, step.outcome, signal) : step.outcome;
          await outbox.remove(entry.pollId, entry.idempotencyKey);
          return outcome;
        }
        case 'keep':
          return step.outcome;
        case 'rechallenge':
          if (rechallenges >= o.rechallengesMax) {
            await outbox.remove(entry.pollId, entry.idempotencyKey);
            return step.outcome;
          }
          rechallenges++;
          entry = { ...entry, altcha: null };
          await outbox.update(entry);
          continue;
        case 'retry': {
          const delayMs = retryDelayWithinBudgetMs(
            attempt,
            step.retryAfterMs,
            { startedAtMs, nowMs: now() },
            policy,
            o.random,
          );
          if (delayMs === null) return step.outcome;
          o.onProgress?.({ phase: 'waiting', pollId: entry.pollId, attempt, delayMs, reason: step.outcome.kind });
          await sleep(delayMs, signal);
          continue;
        }
      }
    }
  };
}

function unexpectedChallengeAnswer(ctx: VoteRequestContext, answer: HttpAnswer): VoteOutcome {
  const body = answer.body as { code?: unknown; detail?: unknown } | null;
  return {
    kind: 'unexpected_response',
    pollId: ctx.pollId,
    status: answer.status,
    code: typeof body?.code === 'string' ? body.code : null,
    detail: `GET /v1/challenge: ${typeof body?.detail === 'string' ? body.detail : `HTTP ${answer.status}`}`,
    queued: true,
  };
}
