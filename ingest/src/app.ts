import type { Server } from 'node:http';
import { createReadModels, type ReadModels } from '@votestream/read-models';
import {
  answerClientErrors,
  createCqlClient,
  createKafka,
  createLimitedServer,
  createLogger,
  createMetricsRegistry,
  createRedis,
  type Logger,
  listen,
  requestErrorCode,
  requireTopics,
  startMetricsServer,
  topicNames,
  voteKey,
} from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Admin, ISocketFactory } from 'kafkajs';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type ChallengeIssuer, createChallengeIssuer } from './abuse/challenge.ts';
import { type ChallengePolicy, createChallengePolicy } from './abuse/challenge-policy.ts';
import {
  createKeyedLimit,
  createRateLimits,
  type KeyedLimit,
  networkPrefixOf,
  type RateLimits,
} from './abuse/rate-limit.ts';
import { createTokenRevocations, type TokenRevocations } from './auth/revocations.ts';
import { createTokenVerifier, type Principal, type TokenVerifier } from './auth/tokens.ts';
import { type IngestConfig, kafkaConnectionTimeoutMs, produceAppendBoundMs, produceRetryTimeMaxMs } from './config.ts';
import { type ClientAddressResolver, createClientAddressResolver } from './http/client-address.ts';
import { attestationOf, securityHeaders } from './http/hardening.ts';
import { openApiDocument } from './http/openapi.ts';
import { type ProblemCode, ProblemError, sendProblem } from './http/problem.ts';
import { PollAdmin, parseCreatePoll, pollView } from './polls/admin.ts';
import { PollCatalog, pollStatus } from './polls/catalog.ts';
import { type Admission, createVoteGuards, type IdempotencyRecord, type VoteGuards } from './votes/admission.ts';
import { BatcherFullError, VoteBatcher, VoteNotSentError } from './votes/batcher.ts';
import { createResettingProducer } from './votes/producer.ts';
import { createResolver, type Resolution, type Resolver } from './votes/resolution.ts';
import { isIdempotencyKey, isPollId, parseVoteBody } from './votes/vote-body.ts';
import { voteIdOf } from './votes/vote-id.ts';

/** Things a test may replace: how Kafka connections are opened (to put a proxy in front of the broker). */
export interface IngestDeps {
  kafkaSocketFactory?: ISocketFactory;
  logger?: Logger;
  /**
   * Fault injection for tests only: no environment variable or config reaches it, `main.ts` never sets it
   * (ingest/test/fault-entry.ts does, and SIGKILLs the process at these points).
   */
  faults?: VoteFaults;
}

export interface VoteFaults {
  /** After the vote was admitted in Redis, before it is handed to the producer. */
  afterAdmit?(vote: VoteCast): void;
  /** After Kafka acknowledged the vote, before the idempotent answer is stored and the 202 sent. */
  afterAck?(vote: VoteCast): void;
}

export interface IngestHandle {
  url: string;
  port: number;
  /** Where Prometheus scrapes `/metrics` (INGEST_METRICS_PORT), not the public port. */
  metricsUrl: string;
  server: Server;
  catalog: PollCatalog;
  metrics: Registry;
  /** Graceful stop: refuse new requests, let in-flight votes reach Kafka, answer them, disconnect. */
  close(): Promise<void>;
}

interface Metrics {
  votes: Counter<'outcome'>;
  /** Pre-bound `ingest_votes_total` children by outcome: no label hashing per vote. */
  voteOutcome(outcome: string): Counter.Internal;
  voteSeconds: Histogram;
  batchMessages: Histogram;
  batchSeconds: Histogram<'ok'>;
}

function createIngestMetrics(registry: Registry, gauges: { inFlight: () => number; polls: () => number }): Metrics {
  new Gauge({
    name: 'ingest_produce_votes_in_flight',
    help: 'Votes in the batcher not yet acknowledged by Kafka (bounded by PRODUCE_VOTES_IN_FLIGHT_MAX).',
    registers: [registry],
    collect() {
      this.set(gauges.inFlight());
    },
  });
  new Gauge({
    name: 'ingest_poll_catalog_polls',
    help: 'Polls in the in-memory catalog.',
    registers: [registry],
    collect() {
      this.set(gauges.polls());
    },
  });
  const votes = new Counter({
    name: 'ingest_votes_total',
    help: 'Vote requests by outcome: accepted, or the problem code answered.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  // Outcomes are a closed set (accepted, replayed, the problem codes, internal): one child each, bound once.
  const outcomes = new Map<string, Counter.Internal>();
  return {
    votes,
    voteOutcome(outcome) {
      let child = outcomes.get(outcome);
      if (child === undefined) {
        child = votes.labels(outcome);
        outcomes.set(outcome, child);
      }
      return child;
    },
    voteSeconds: new Histogram({
      name: 'ingest_vote_accept_seconds',
      help: 'From request to 202 (includes the Kafka acknowledgement).',
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    batchMessages: new Histogram({
      name: 'ingest_produce_batch_messages',
      help: 'Votes per Kafka produce request.',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'ingest_produce_batch_seconds',
      help: 'Duration of one produce request (acks=all), by success.',
      labelNames: ['ok'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

interface Context {
  config: IngestConfig;
  logger: Logger;
  metrics: Metrics;
  registry: Registry;
  verifyToken: TokenVerifier;
  revocations: TokenRevocations;
  clientAddress: ClientAddressResolver;
  challenges: ChallengeIssuer;
  challengePolicy: ChallengePolicy;
  rateLimits: RateLimits;
  /** Poll creations per admin (`sub`): resolves the seconds to wait, 0 when allowed. */
  pollCreateLimit: KeyedLimit;
  guards: VoteGuards;
  catalog: PollCatalog;
  pollAdmin: PollAdmin;
  batcher: VoteBatcher;
  encodeVote: (v: VoteCast) => Buffer;
  readModels: ReadModels;
  resolver: Resolver;
  /** produceAppendBoundMs of this process's Kafka settings (see config.ts). */
  produceAppendBoundMs: number;
  faults: VoteFaults | undefined;
  isReady: () => boolean;
}

const userAgentCharsMax = 256;
const headerCharsMax = 128;

function header(req: Request, name: string, max: number): string | null {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v.slice(0, max) : null;
}

async function authenticate(ctx: Context, req: Request, scope?: string): Promise<Principal> {
  const principal = await ctx.verifyToken(req.headers.authorization);
  if ('refused' in principal) throw new ProblemError('unauthenticated', principal.refused);
  if (principal.tokenId !== null && (await ctx.revocations.isRevoked(principal.tokenId))) {
    throw new ProblemError('unauthenticated', 'this token was revoked');
  }
  if (scope !== undefined && !principal.scopes.has(scope))
    throw new ProblemError('forbidden', `scope ${scope} required`);
  return principal;
}

/** The vote path. Every early exit is a problem response; the 202 goes out only after Kafka acknowledged. */
async function castVote(ctx: Context, req: Request, res: Response): Promise<void> {
  const started = process.hrtime.bigint();
  const now = Date.now();
  const principal = await authenticate(ctx, req);
  const idempotencyKey = req.headers['idempotency-key'];
  if (!isIdempotencyKey(idempotencyKey)) {
    throw new ProblemError('invalid_body', 'Idempotency-Key header required: 8 to 128 printable ASCII characters');
  }
  const body = parseVoteBody(req.body);
  if (typeof body === 'string') throw new ProblemError('invalid_body', body);
  const pollId = req.params.pollId as string;
  const entry = isPollId(pollId) ? ctx.catalog.get(pollId) : undefined;
  if (entry === undefined) throw new ProblemError('poll_not_found', `no poll ${pollId.slice(0, 64)}`);
  if (!entry.optionIds.has(body.optionId)) {
    throw new ProblemError('unknown_option', `option ${body.optionId} is not part of poll ${pollId}`);
  }
  const status = pollStatus(entry.poll, now);
  if (status === 'scheduled')
    throw new ProblemError('poll_not_open', `poll ${pollId} opens at ${new Date(entry.poll.opensAt).toISOString()}`);
  if (status === 'closed') throw new ProblemError('poll_closed', `poll ${pollId} is closed`);

  const networkPrefix = networkPrefixOf(ctx.clientAddress(req));
  const attestation = attestationOf(req);
  const retryAfterS = await ctx.rateLimits.consume(principal.voterId, networkPrefix);
  if (retryAfterS > 0) throw new ProblemError('rate_limited', 'slow down', undefined, retryAfterS);

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
      userAgent: header(req, 'user-agent', userAgentCharsMax),
      deviceId: header(req, 'x-device-id', headerCharsMax),
      attestation,
    },
  };
  ctx.faults?.afterAdmit?.(vote);
  let acked: Promise<void>;
  try {
    // Sent no later than the lease allows: every append of this vote happens before its lease expires.
    const sendByMs = now + ctx.config.voteProduceDeadlineMs - ctx.produceAppendBoundMs - 1000;
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
      await ctx.guards
        .fail(keys, idemPending)
        .catch((e: unknown) => ctx.logger.error({ err: e, pollId }, 'could not mark the vote failed'));
    }
    ctx.logger.warn({ err: (err as Error).message }, 'vote not acknowledged by Kafka');
    throw new ProblemError(
      'unavailable',
      'Kafka did not acknowledge the vote; retry with the same Idempotency-Key',
      undefined,
      2,
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

/**
 * The admission script, and for a stale guard of another attempt of this voter (dead or failed process, lease
 * expired) the stream's decision about it: its counted vote becomes the guard (409 naming it, or this request's
 * own vote), and if nothing of it was counted the guard is released and the request admitted.
 */
async function admitVote(
  ctx: Context,
  a: Omit<Parameters<VoteGuards['admit']>[0], 'challengeId'> & {
    pollId: string;
    voterId: string;
    challengeId: string | null;
  },
): Promise<Exclude<Admission, { kind: 'stale' }>> {
  for (let attempt = 0; ; attempt++) {
    let admission: Admission;
    try {
      // The challenge is taken in the first round only (the second round's would look replayed).
      admission = await ctx.guards.admit({ ...a, challengeId: attempt === 0 ? a.challengeId : null });
    } catch (err) {
      ctx.logger.error({ err }, 'vote admission failed (Redis)');
      throw new ProblemError('unavailable', 'the vote guard store is unreachable', undefined, 2);
    }
    if (admission.kind !== 'stale') return admission;
    const undecided = new ProblemError(
      'unavailable',
      'an earlier request of this voter in this poll is not decided yet',
      undefined,
      1,
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

export function createIngestApp(ctx: Context): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Express's req.ip is not used: the client address comes from ctx.clientAddress (CLIENT_ADDRESS_SOURCE).
  app.set('trust proxy', false);
  app.use(securityHeaders);
  const json = express.json({ limit: ctx.config.bodyLimitBytes, strict: true, type: 'application/json' });
  const spec = JSON.stringify(openApiDocument);

  // The vote route first: the router tries routes in order, and this is the one taking the load.
  app.post('/v1/polls/:pollId/votes', json, async (req, res) => {
    try {
      await castVote(ctx, req, res);
    } catch (err) {
      ctx.metrics.voteOutcome(err instanceof ProblemError ? err.code : 'internal').inc();
      throw err;
    }
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = ctx.isReady();
    res.status(ready ? 200 : 503).json({ ready });
  });
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(spec);
  });

  // A challenge for this voter in this poll; counted against the voter, network and device (abuse/challenge-policy).
  app.get('/v1/challenge', async (req, res) => {
    const principal = await authenticate(ctx, req);
    const pollId = req.query.pollId;
    if (typeof pollId !== 'string' || !isPollId(pollId)) {
      throw new ProblemError('invalid_body', 'query parameter pollId required: [a-z0-9-]{1,64}');
    }
    if (ctx.catalog.get(pollId) === undefined) throw new ProblemError('poll_not_found', `no poll ${pollId}`);
    const maxNumber = await ctx.challengePolicy.admit(
      principal.voterId,
      networkPrefixOf(ctx.clientAddress(req)),
      header(req, 'x-device-id', headerCharsMax),
    );
    res.setHeader('Cache-Control', 'no-store');
    res.json(await ctx.challenges.issue(ctx.challenges.bind(principal.voterId, pollId), maxNumber));
  });

  // Revokes a stolen token by its jti until it would age out anyway (JWT_MAX_TOKEN_AGE_S from now at most).
  app.post('/v1/token-revocations', json, async (req, res) => {
    await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const jti = (req.body as { jti?: unknown } | undefined)?.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 128 || !/^[\x21-\x7e]+$/.test(jti)) {
      throw new ProblemError('invalid_body', 'jti must be 1 to 128 printable ASCII characters');
    }
    const nowS = Math.floor(Date.now() / 1000);
    const revokedUntilS = nowS + ctx.config.jwtMaxTokenAgeS + ctx.config.jwtClockToleranceS;
    await ctx.revocations.revoke(jti, revokedUntilS, nowS);
    ctx.logger.warn({ jti }, 'token revoked');
    res.status(201).json({ jti, revokedUntil: new Date(revokedUntilS * 1000).toISOString() });
  });

  app.post('/v1/polls', json, async (req, res) => {
    const principal = await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const retryAfterS = await ctx.pollCreateLimit(principal.voterId);
    if (retryAfterS > 0) throw new ProblemError('rate_limited', 'too many polls created', undefined, retryAfterS);
    const now = Date.now();
    const poll = await ctx.pollAdmin.create(parseCreatePoll(req.body, now), now);
    res.status(201).json(pollView(poll, Date.now()));
  });
  // Polls and results are public, read-only data: any origin may read them (the live results page is served by
  // projections, from another origin on the local stack). Nothing with a token is shared this way.
  app.get('/v1/polls/:pollId', (req, res) => {
    res.set('Access-Control-Allow-Origin', '*');
    const entry = ctx.catalog.get(req.params.pollId);
    if (!entry) throw new ProblemError('poll_not_found', `no poll ${req.params.pollId.slice(0, 64)}`);
    res.json(pollView(entry.poll, Date.now()));
  });
  app.post('/v1/polls/:pollId/close', async (req, res) => {
    await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const poll = await ctx.pollAdmin.close(req.params.pollId, Date.now());
    res.status(200).json(pollView(poll, Date.now()));
  });
  app.get('/v1/polls/:pollId/results', async (req, res) => {
    res.set('Access-Control-Allow-Origin', '*');
    const entry = ctx.catalog.get(req.params.pollId);
    if (!entry) throw new ProblemError('poll_not_found', `no poll ${req.params.pollId.slice(0, 64)}`);
    let results: Awaited<ReturnType<ReadModels['getResults']>>;
    try {
      results = await ctx.readModels.getResults(entry.poll.pollId);
    } catch (err) {
      ctx.logger.error({ err }, 'results read failed');
      throw new ProblemError('unavailable', 'the results store is unreachable', undefined, 2);
    }
    if (results === null) {
      // No tally yet: every option at zero, version 0 (any real tally is newer).
      const totals: Record<string, number> = {};
      for (const o of entry.poll.options) totals[o.id] = 0;
      res.json({
        pollId: entry.poll.pollId,
        totals,
        total: 0,
        version: 0,
        asOf: new Date().toISOString(),
        final: false,
      });
      return;
    }
    res.json(results);
  });
  app.get('/v1/polls/:pollId/votes/me', async (req, res) => {
    const principal = await authenticate(ctx, req);
    const pollId = req.params.pollId;
    if (!ctx.catalog.get(pollId)) throw new ProblemError('poll_not_found', `no poll ${pollId.slice(0, 64)}`);
    let receipt: Awaited<ReturnType<ReadModels['getReceipt']>>;
    let pending: Awaited<ReturnType<VoteGuards['pending']>>;
    try {
      [receipt, pending] = await Promise.all([
        ctx.readModels.getReceipt(pollId, principal.voterId),
        ctx.guards.pending(pollId, principal.voterId),
      ]);
    } catch (err) {
      ctx.logger.error({ err }, 'receipt read failed');
      throw new ProblemError('unavailable', 'the receipts store is unreachable', undefined, 2);
    }
    if (receipt !== null) {
      res.json({ voteId: receipt.voteId, optionId: receipt.optionId, status: receipt.status, reason: receipt.reason });
      return;
    }
    if (pending !== null) {
      res.json({ voteId: pending.voteId, optionId: pending.optionId, status: 'pending', reason: null });
      return;
    }
    throw new ProblemError('no_vote', `no vote by this voter in poll ${pollId}`);
  });

  app.use((_req, _res, next) => next(new ProblemError('not_found', 'no such route')));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof ProblemError) {
      sendProblem(res, err.code, err.message, err.extensions, err.retryAfterS);
      return;
    }
    // Errors the request's own bytes caused before or while parsing it (bad percent-escapes in the path, a body
    // that does not decompress or parse, an unsupported encoding): 4xx problems, never 500.
    const requestError = requestErrorCode(err);
    if (requestError !== null) {
      const code: ProblemCode = requestError === 'body_too_large' ? 'invalid_body' : requestError;
      const detail =
        requestError === 'body_too_large'
          ? `body larger than ${ctx.config.bodyLimitBytes} bytes`
          : requestError === 'invalid_path'
            ? 'the path is not valid percent-encoding'
            : requestError === 'unsupported_encoding'
              ? 'Content-Encoding gzip, deflate, br or identity and charset utf-8 only'
              : 'malformed or undecodable body';
      sendProblem(res, code, detail);
      return;
    }
    ctx.logger.error({ err }, 'unhandled error');
    sendProblem(res, 'internal');
  });
  return app;
}

/**
 * Builds everything from the config, waits until the poll catalog caught up, and listens.
 * Tests call it with their own config (ports, topic prefix, Redis prefix, keys).
 */
export async function startIngest(config: IngestConfig, deps: IngestDeps = {}): Promise<IngestHandle> {
  const logger = deps.logger ?? createLogger('ingest', config.logLevel);
  const topics = topicNames(config.topicPrefix);
  const registry = createMetricsRegistry('ingest');
  const kafka = createKafka({
    clientId: `ingest-${process.pid}`,
    brokers: config.kafkaBrokers,
    security: config.kafkaSecurity,
    logger,
    connectionTimeout: kafkaConnectionTimeoutMs,
    requestTimeout: config.produceRequestTimeoutMs,
    // Bounded, so a dead broker turns into 503s (and the voter's retry) instead of requests that never end.
    retry: { initialRetryTime: 100, maxRetryTime: produceRetryTimeMaxMs, retries: config.produceRetries },
    ...(deps.kafkaSocketFactory ? { socketFactory: deps.kafkaSocketFactory } : {}),
  });
  const serde = await createAvroSerde({ registryUrl: config.schemaRegistryUrl, records: ['VoteCast', 'PollEvent'] });
  const redis = createRedis(config, {
    // Many concurrent votes' commands leave in one write: one round trip carries hundreds of requests.
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 2000,
    enableOfflineQueue: true,
    lazyConnect: false,
  });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  const cql = createCqlClient({
    contactPoints: config.cqlContactPoints,
    localDataCenter: config.cqlLocalDataCenter,
    security: config.cqlSecurity,
  });
  const producer = await createResettingProducer(
    kafka,
    {
      idempotent: true, // broker drops the duplicates of our own retries
      maxInFlightRequests: 1, // ordering + idempotence without sequence gaps
      allowAutoTopicCreation: false,
      // These bound how long after a send a vote can still append (produceAppendBoundMs, the vote's lease).
      retry: { initialRetryTime: 100, maxRetryTime: produceRetryTimeMaxMs, retries: config.produceRetries },
    },
    logger,
  );
  const probeAdmin: Admin = kafka.admin({ retry: { retries: 0 } });
  await probeAdmin.connect();
  await requireTopics(probeAdmin, [topics.votes, topics.polls]);
  const catalog = new PollCatalog(kafka, topics.polls, serde.decoder('PollEvent'), logger);
  await catalog.start();

  let kafkaOk = true;
  let stopping = false;
  const probe = setInterval(() => {
    probeAdmin.describeCluster().then(
      () => {
        kafkaOk = true;
      },
      () => {
        kafkaOk = false;
      },
    );
  }, 2000);
  probe.unref();

  const metricsHolder: { m?: Metrics } = {};
  const batcher = new VoteBatcher(
    producer,
    topics.votes,
    {
      votesInFlightMax: config.produceVotesInFlightMax,
      batchMessagesMax: config.produceBatchMessagesMax,
      lingerMs: config.produceLingerMs,
      produceTimeoutMs: config.produceTimeoutMs,
      backoffMs: config.produceBackoffMs,
      sendsInFlightMax: 1,
    },
    {
      onBatch(messages, seconds, ok) {
        metricsHolder.m?.batchMessages.observe(messages);
        metricsHolder.m?.batchSeconds.observe({ ok: String(ok) }, seconds);
      },
    },
  );
  const metrics = createIngestMetrics(registry, { inFlight: () => batcher.votesInFlight, polls: () => catalog.size });
  metricsHolder.m = metrics;

  const readModels = createReadModels({
    redis,
    cql,
    keyspace: config.cqlKeyspace,
    redisPrefix: config.redisPrefix,
    logger,
  });
  const ctx: Context = {
    config,
    logger,
    metrics,
    registry,
    verifyToken: createTokenVerifier({
      publicKeyPem: config.jwtPublicKeyPem,
      jwksUrl: config.jwtJwksUrl,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      clockToleranceS: config.jwtClockToleranceS,
      maxTokenAgeS: config.jwtMaxTokenAgeS,
    }),
    revocations: createTokenRevocations(redis, config.redisPrefix, config.tokenRevocationsMax),
    clientAddress: createClientAddressResolver({
      source: config.clientAddressSource,
      trustProxyHops: config.trustProxyHops,
      trustedProxyCidrs: config.trustedProxyCidrs,
    }),
    challenges: createChallengeIssuer({ hmacKey: config.altchaHmacKey, expiresS: config.altchaExpiresS }),
    challengePolicy: createChallengePolicy({
      redis,
      keyPrefix: config.redisPrefix,
      windowS: config.challengeWindowS,
      voterChallengesMax: config.challengeVoterMax,
      voterBaseline: config.challengeVoterBaseline,
      networkBaseline: config.challengeNetworkBaseline,
      deviceBaseline: config.challengeDeviceBaseline,
      maxNumberBase: config.altchaMaxNumber,
      maxNumberCeiling: config.altchaMaxNumberCeiling,
    }),
    rateLimits: createRateLimits({
      redis,
      keyPrefix: config.redisPrefix,
      voterPoints: config.rateVoterPoints,
      voterDurationS: config.rateVoterDurationS,
      networkPoints: config.rateNetworkPoints,
      networkDurationS: config.rateNetworkDurationS,
      fleetSize: config.rateFallbackFleetSize,
    }),
    pollCreateLimit: createKeyedLimit({
      redis,
      keyPrefix: config.redisPrefix,
      name: 'poll-create',
      points: config.ratePollCreatePoints,
      durationS: config.ratePollCreateDurationS,
      fleetSize: config.rateFallbackFleetSize,
    }),
    guards: createVoteGuards(redis, config.redisPrefix, {
      guardS: config.voteGuardTtlS,
      idempotencyS: config.idempotencyTtlS,
      leaseMs: config.voteProduceDeadlineMs,
    }),
    catalog,
    pollAdmin: new PollAdmin(
      producer,
      topics.polls,
      serde.encoder('PollEvent'),
      catalog,
      redis,
      config.redisPrefix,
      config.pollsMax,
    ),
    batcher,
    encodeVote: serde.encoder('VoteCast', { validate: false }),
    readModels,
    resolver: createResolver({
      admin: probeAdmin,
      topics,
      dedupeGroupId: config.dedupeGroupId,
      receiptsGroupId: config.receiptsGroupId,
      readReceipts: (pollId, voterId) => readModels.getReceipts(pollId, voterId),
      waitMs: 3000,
      inProgressMax: 1000,
    }),
    produceAppendBoundMs: produceAppendBoundMs({
      connectionTimeoutMs: kafkaConnectionTimeoutMs,
      requestTimeoutMs: config.produceRequestTimeoutMs,
      retries: config.produceRetries,
    }),
    faults: deps.faults,
    isReady: () => !stopping && catalog.ready && kafkaOk && !batcher.failing && redis.status === 'ready',
  };
  const app = createIngestApp(ctx);
  // Header/request timeouts and a connection cap (HTTP_* env, runtime/http-server.ts): a slow client is cut;
  // what Node's parser refuses is answered as problem+json (runtime/http.ts).
  const server = createLimitedServer(config.http, app);
  answerClientErrors(server);
  const port = await listen(server, config.port, '0.0.0.0');
  const metricsServer = await startMetricsServer({ registry, port: config.metricsPort, host: '0.0.0.0' });
  logger.info({ port, metricsPort: metricsServer.port, topics: topics.votes }, 'ingest listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      stopping = true;
      clearInterval(probe);
      // 1. No new connections; idle keep-alive connections close, busy ones finish their request.
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // 2. Every vote already handed to the batcher reaches Kafka (or fails and is answered 503).
      await batcher.drain();
      // 3. Their responses go out; stragglers are cut after the drain budget.
      const cut = setTimeout(() => server.closeAllConnections(), config.shutdownDrainMs);
      await serverClosed;
      clearTimeout(cut);
      // Bounded: a broker that is gone must not keep the process from exiting (nothing is left to flush).
      let giveUp: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([producer.disconnect(), catalog.stop(), probeAdmin.disconnect(), cql.shutdown()]),
        new Promise((resolve) => {
          giveUp = setTimeout(resolve, 5000);
        }),
      ]);
      clearTimeout(giveUp);
      await metricsServer.close();
      redis.disconnect();
      logger.info('ingest stopped');
    })();
    return closing;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    metricsUrl: `http://127.0.0.1:${metricsServer.port}`,
    server,
    catalog,
    metrics: registry,
    close,
  };
}
