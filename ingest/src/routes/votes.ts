import { voteKey } from '@votestream/runtime';
import type { VoteCast } from '@votestream/schemas';
import type { Express, Request, RequestHandler, Response } from 'express';
import { networkPrefixOf } from '../abuse/rate-limit.ts';
import { notRevoked, verifiedPrincipal } from '../auth/authenticate.ts';
import type { IngestContext } from '../context.ts';
import { attestationOf } from '../http/hardening.ts';
import { boundedHeader, echoedIdCharsMax, headerCharsMax, userAgentCharsMax } from '../http/headers.ts';
import { ProblemError } from '../http/problem.ts';
import { type CatalogEntry, closeTimeOf, pollStatus } from '../polls/catalog.ts';
import type { Admission, IdempotencyRecord, VoteGuards } from '../votes/admission.ts';
import { BatcherFullError, VoteNotSentError } from '../votes/batcher.ts';
import type { Resolution } from '../votes/resolution.ts';
import { isIdempotencyKey, isPollId, parseVoteBody, type VoteBody } from '../votes/vote-body.ts';
import { voteIdOf } from '../votes/vote-id.ts';

/**
 * The batcher's last moment to send a vote ends this long before the vote's lease may: the lease is a Redis
 * timer and the deadline this process's clock, so neither needs to be exact.
 */
const sendDeadlineMarginMs = 1000;
/** Retry-After when a store (Redis, Kafka, the read models) cannot answer: a reconnect usually takes that long. */
const storeUnavailableRetryAfterS = 2;
/** Retry-After while the stream has not decided an earlier attempt of this voter (a read barrier, see resolution.ts). */
const undecidedRetryAfterS = 1;

/** `POST /v1/polls/:pollId/votes`; registered first: the router tries routes in order, and this one takes the load. */
export function registerVoteRoutes(app: Express, ctx: IngestContext, json: RequestHandler): void {
  app.post('/v1/polls/:pollId/votes', json, async (req, res) => {
    try {
      await castVote(ctx, req, res);
    } catch (err) {
      ctx.metrics.voteOutcome(err instanceof ProblemError ? err.code : 'internal').inc();
      throw err;
    }
  });
}

/** The vote path. Every early exit is a problem response; the 202 goes out only after Kafka acknowledged. */
async function castVote(ctx: IngestContext, req: Request, res: Response): Promise<void> {
  const started = process.hrtime.bigint();
  const now = ctx.now();
  const principal = await verifiedPrincipal(ctx, req);
  // The revocation read leaves now and shares its Redis round trip with the rate limiters' scripts (auto-pipelined:
  // three round trips per vote instead of four). A revoked token is still answered 401 before any other answer.
  const revocation = notRevoked(ctx, principal);
  let checked: CheckedRequest;
  try {
    checked = checkRequest(ctx, req, now);
  } catch (err) {
    await revocation;
    throw err;
  }
  const { idempotencyKey, body, pollId, entry, networkPrefix, attestation } = checked;
  const [revoked, limited] = await Promise.allSettled([
    revocation,
    ctx.rateLimits.consume(principal.voterId, networkPrefix),
  ]);
  if (revoked.status === 'rejected') throw revoked.reason;
  if (limited.status === 'rejected') throw limited.reason;
  if (limited.value > 0) throw new ProblemError('rate_limited', 'slow down', undefined, limited.value);

  let challengeId: string | null = null;
  let challengeTtlS = 0;
  if (ctx.config.challengePolicy === 'required') {
    const solution = req.headers['x-altcha'];
    if (typeof solution !== 'string' || solution === '') {
      throw new ProblemError('challenge_required', 'solve GET /v1/challenge and send it in X-Altcha');
    }
    const verified = await ctx.challenges.verify(solution, ctx.challenges.bind(principal.voterId, pollId));
    if (verified === null) {
      throw new ProblemError('challenge_failed', 'the solution is invalid, expired, or for another voter or poll');
    }
    challengeId = verified.challengeId;
    challengeTtlS = verified.expiresAtS - Math.floor(now / 1000) + 1;
  }

  const voteId = voteIdOf(pollId, principal.voterId, idempotencyKey);
  const request = `${pollId}\n${body.optionId}\n${body.castAt ?? ''}`;
  const keys = ctx.guards.keys(pollId, principal.voterId, idempotencyKey);
  const guardValue = `${voteId}|${body.optionId}|${now}`;
  const idemPending = JSON.stringify({ s: 'P', b: request, v: voteId } satisfies IdempotencyRecord);
  const admission = await admitVote(ctx, {
    keys,
    guardValue,
    idemPending,
    voteId,
    pollId,
    voterId: principal.voterId,
    optionId: body.optionId,
    challengeId,
    challengeTtlS,
  });
  switch (admission.kind) {
    case 'replay': {
      const record = admission.record;
      if (record.b !== request) {
        throw new ProblemError('idempotency_key_reused', 'this Idempotency-Key was used with a different request');
      }
      ctx.metrics.voteOutcome('replayed').inc();
      res.status(202).json(record.r);
      return;
    }
    case 'acknowledged':
      // This key's vote was acknowledged; only its idempotency record is gone. Same voteId, same answer.
      ctx.metrics.voteOutcome('replayed').inc();
      sendJson(res, 202, acceptedJson(voteId, pollId, body.optionId));
      return;
    case 'key_reused':
      throw new ProblemError('idempotency_key_reused', 'this Idempotency-Key was used with a different request');
    case 'in_flight':
      // Come back when the attempt in flight will have its answer (a live produce is answered within
      // PRODUCE_TIMEOUT_MS), or when its lease ends if that is sooner: not after the whole lease, which only a
      // dead process's attempt needs (the solution is given back, so each retry costs the voter nothing).
      throw new ProblemError(
        'unavailable',
        'an earlier request of this voter in this poll is still in flight',
        undefined,
        Math.max(1, Math.ceil(Math.min(admission.retryAfterMs, ctx.config.produceTimeoutMs) / 1000)),
      );
    case 'already_voted':
      throw new ProblemError('already_voted', `voter already voted in poll ${pollId}`, { voteId: admission.voteId });
    case 'challenge_replayed':
      throw new ProblemError('challenge_failed', 'this solution was already used');
    case 'admitted':
    case 'taken_over':
      break;
  }
  const guard = admission.guard;

  // A vote that was never handed to the producer frees the voter (if we admitted it fresh); a produce that failed
  // or timed out may still have landed: the guard stays, a resend with the same key may retry (same voteId).
  const notSent = () =>
    (admission.kind === 'admitted'
      ? ctx.guards.release({ keys, guardValue, idemPending, challengeId, voteId })
      : ctx.guards.fail(keys, idemPending)
    ).catch((err: unknown) => ctx.logger.error({ err, pollId }, 'could not release the vote guard'));
  // The vote may be in Kafka: the guard stays, marked failed, so a resend with the same key may retry (same voteId).
  const keepGuardAsFailed = () =>
    ctx.guards
      .fail(keys, idemPending)
      .catch((e: unknown) => ctx.logger.error({ err: e, pollId }, 'could not mark the vote failed'));
  const vote: VoteCast = {
    voteId,
    pollId,
    optionId: body.optionId,
    voterId: principal.voterId,
    idempotencyKey,
    castAt: body.castAt,
    receivedAt: now,
    evidence: {
      challenge: challengeId === null ? 'NOT_REQUIRED' : 'SOLVED',
      challengeId,
      tokenId: principal.tokenId,
      networkPrefix,
      userAgent: boundedHeader(req, 'user-agent', userAgentCharsMax),
      deviceId: boundedHeader(req, 'x-device-id', headerCharsMax),
      attestation,
    },
  };
  ctx.faults?.afterAdmit?.(vote);
  let acked: Promise<void>;
  try {
    // Sent no later than the lease allows: every append of this vote happens before its lease expires.
    const sendByMs = now + ctx.config.voteProduceDeadlineMs - ctx.produceAppendBoundMs - sendDeadlineMarginMs;
    acked = ctx.batcher.submit({ key: voteKey(pollId, principal.voterId), value: ctx.encodeVote(vote) }, sendByMs);
  } catch (err) {
    await notSent();
    if (err instanceof BatcherFullError) throw new ProblemError('unavailable', err.message, undefined, err.retryAfterS);
    throw err;
  }
  try {
    await acked;
  } catch (err) {
    if (err instanceof VoteNotSentError) await notSent();
    else {
      await keepGuardAsFailed();
    }
    ctx.logger.warn({ err: (err as Error).message }, 'vote not acknowledged by Kafka');
    throw new ProblemError(
      'unavailable',
      'Kafka did not acknowledge the vote; retry with the same Idempotency-Key',
      undefined,
      storeUnavailableRetryAfterS,
    );
  }
  const closeAt = closeTimeOf(ctx.catalog.get(pollId)?.poll ?? entry.poll);
  // Received at or after the close: this instance's catalog had not applied the close yet when the vote came in (an
  // admin closed the poll on another instance a moment before), so the stream decides it POLL_CLOSED, for sure: the
  // close can only move earlier (the earliest close wins). A 202 would be a promise the stream breaks.
  if (closeAt !== null && vote.receivedAt >= closeAt) {
    await keepGuardAsFailed();
    ctx.logger.warn({ pollId, voteId, closeAt }, 'vote received after the poll closed (catalog not yet current)');
    throw new ProblemError('poll_closed', `poll ${pollId} closed before this vote was received`);
  }
  // Acknowledged too late to promise that it counts: the poll closed while the vote was in flight (a broker
  // failure at the close), and the stream may already have finalised the poll and decided this vote POLL_CLOSED.
  // Not a 202: the vote may still count (its event time is before the close); `votes/me` tells the voter which.
  if (closeAt !== null && ctx.now() >= closeAt + ctx.config.voteCloseAckGraceMs) {
    await keepGuardAsFailed();
    ctx.logger.warn({ pollId, voteId, closeAt }, 'vote acknowledged after the poll closed + grace: not answered 202');
    throw new ProblemError(
      'unavailable',
      'Kafka acknowledged the vote only after the poll closed; whether it counts is decided by the stream (GET /v1/polls/{pollId}/votes/me)',
      undefined,
      storeUnavailableRetryAfterS,
    );
  }
  ctx.faults?.afterAck?.(vote);
  const answer = acceptedJson(voteId, pollId, body.optionId);
  // Best effort: if Redis lost this write, a resend with the same key produces the same voteId again (the stream
  // treats it as a resend of the counted vote), and another key waits for the lease and the stream's decision.
  const ours = await ctx.guards
    .complete(keys, guard, `{"s":"D","b":${JSON.stringify(request)},"v":"${voteId}","r":${answer}}`)
    .catch((err: unknown) => {
      ctx.logger.warn({ err }, 'could not store the idempotent answer');
      return true;
    });
  if (!ours) ctx.logger.error({ pollId, voteId }, 'invariant: an acknowledged vote lost its guard before the answer');
  ctx.metrics.voteOutcome('accepted').inc();
  ctx.metrics.voteSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  sendJson(res, 202, answer);
}

interface CheckedRequest {
  idempotencyKey: string;
  body: VoteBody;
  pollId: string;
  entry: CatalogEntry;
  networkPrefix: string;
  attestation: string | null;
}

/** The checks that need no I/O: Idempotency-Key, body, poll and option, the poll open at `now`, the headers kept. */
function checkRequest(ctx: IngestContext, req: Request, now: number): CheckedRequest {
  const idempotencyKey = req.headers['idempotency-key'];
  if (!isIdempotencyKey(idempotencyKey)) {
    throw new ProblemError('invalid_body', 'Idempotency-Key header required: 8 to 128 printable ASCII characters');
  }
  const body = parseVoteBody(req.body);
  if (typeof body === 'string') throw new ProblemError('invalid_body', body);
  const pollId = req.params.pollId as string;
  const entry = isPollId(pollId) ? ctx.catalog.get(pollId) : undefined;
  if (entry === undefined) throw new ProblemError('poll_not_found', `no poll ${pollId.slice(0, echoedIdCharsMax)}`);
  if (!entry.optionIds.has(body.optionId)) {
    throw new ProblemError('unknown_option', `option ${body.optionId} is not part of poll ${pollId}`);
  }
  const status = pollStatus(entry.poll, now);
  if (status === 'scheduled')
    throw new ProblemError('poll_not_open', `poll ${pollId} opens at ${new Date(entry.poll.opensAt).toISOString()}`);
  if (status === 'closed') throw new ProblemError('poll_closed', `poll ${pollId} is closed`);
  const networkPrefix = networkPrefixOf(ctx.clientAddress(req));
  const attestation = attestationOf(req);
  return { idempotencyKey, body, pollId, entry, networkPrefix, attestation };
}

/**
 * The admission script, and for a stale guard of another attempt of this voter (dead or failed process, lease
 * expired) the stream's decision about it: its counted vote becomes the guard (409 naming it, or this request's
 * own vote), and if nothing of it was counted the guard is released and the request admitted.
 */
async function admitVote(
  ctx: IngestContext,
  a: Parameters<VoteGuards['admit']>[0] & { pollId: string; voterId: string },
): Promise<Exclude<Admission, { kind: 'stale' }>> {
  for (let attempt = 0; ; attempt++) {
    let admission: Admission;
    try {
      // The challenge is taken in the first round only (the second round's would look replayed).
      admission = await ctx.guards.admit({ ...a, challengeId: attempt === 0 ? a.challengeId : null });
    } catch (err) {
      ctx.logger.error({ err }, 'vote admission failed (Redis)');
      throw new ProblemError(
        'unavailable',
        'the vote guard store is unreachable',
        undefined,
        storeUnavailableRetryAfterS,
      );
    }
    if (admission.kind !== 'stale') return admission;
    const undecided = new ProblemError(
      'unavailable',
      'an earlier request of this voter in this poll is not decided yet',
      undefined,
      undecidedRetryAfterS,
    );
    // Nothing admitted: the challenge taken in the first round is given back (the voter retries with it).
    const giveBack = async () => {
      if (a.challengeId !== null) await ctx.guards.releaseChallenge(a.challengeId, a.voteId).catch(() => undefined);
      return undecided;
    };
    if (attempt > 0) throw await giveBack();
    let resolution: Resolution;
    try {
      resolution = await ctx.resolver.resolve(a.pollId, a.voterId);
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'vote resolution failed');
      throw await giveBack();
    }
    if (resolution.kind === 'undecided') throw await giveBack();
    const counted = resolution.counted;
    if (counted === null) {
      // The stale attempt never landed (or was rejected): free the voter and admit this request.
      await ctx.guards.settle(a.keys, admission.guard, null);
      continue;
    }
    await ctx.guards.settle(a.keys, admission.guard, `${counted.voteId}|${counted.optionId}|0|D`);
    if (counted.voteId === a.voteId) return { kind: 'acknowledged', guard: admission.guard };
    return { kind: 'already_voted', voteId: counted.voteId };
  }
}

/**
 * The 202 body `{voteId,pollId,optionId,status}`, serialised without JSON.stringify: every field was validated
 * before (voteId is a UUID, pollId and optionId match `[a-z0-9-]{1,64}`), so none needs escaping.
 */
function acceptedJson(voteId: string, pollId: string, optionId: string): string {
  return `{"voteId":"${voteId}","pollId":"${pollId}","optionId":"${optionId}","status":"accepted"}`;
}

/**
 * What `res.status(s).json()` sends (same Content-Type and Content-Length; ETag and x-powered-by are off for this
 * app) without Express's per-response settings lookups, type negotiation and freshness check.
 */
function sendJson(res: Response, status: number, json: string): void {
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
  });
  res.end(json);
}
