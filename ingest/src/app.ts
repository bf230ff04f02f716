import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createReadModels, type ReadModels } from '@votestream/read-models';
import {
  createCqlClient,
  createKafka,
  createLogger,
  createMetricsRegistry,
  createRedis,
  type Logger,
  requireTopics,
  topicNames,
  voteKey,
} from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Admin, ISocketFactory } from 'kafkajs';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type ChallengeIssuer, createChallengeIssuer } from './abuse/challenge.ts';
import { createRateLimits, networkPrefixOf, type RateLimits } from './abuse/rate-limit.ts';
import { createTokenVerifier, type Principal, type TokenVerifier } from './auth/tokens.ts';
import type { IngestConfig } from './config.ts';
import { openApiDocument } from './http/openapi.ts';
import { type ProblemCode, ProblemError, sendProblem } from './http/problem.ts';
import { PollAdmin, parseCreatePoll, pollView } from './polls/admin.ts';
import { PollCatalog, pollStatus } from './polls/catalog.ts';
import { createVoteGuards, type IdempotencyRecord, type VoteGuards } from './votes/admission.ts';
import { BatcherFullError, VoteBatcher } from './votes/batcher.ts';
import { createResettingProducer } from './votes/producer.ts';
import { isIdempotencyKey, isPollId, parseVoteBody } from './votes/vote-body.ts';

/** Things a test may replace: how Kafka connections are opened (to put a proxy in front of the broker). */
export interface IngestDeps {
  kafkaSocketFactory?: ISocketFactory;
  logger?: Logger;
}

export interface IngestHandle {
  url: string;
  port: number;
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
  challenges: ChallengeIssuer;
  rateLimits: RateLimits;
  guards: VoteGuards;
  catalog: PollCatalog;
  pollAdmin: PollAdmin;
  batcher: VoteBatcher;
  encodeVote: (v: VoteCast) => Buffer;
  readModels: ReadModels;
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
  if (principal === null) throw new ProblemError('unauthenticated', 'missing, malformed, expired or untrusted token');
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

  const networkPrefix = networkPrefixOf(req.ip);
  const retryAfterS = await ctx.rateLimits.consume(principal.voterId, networkPrefix);
  if (retryAfterS > 0) throw new ProblemError('rate_limited', 'slow down', undefined, retryAfterS);

  let challengeId: string | null = null;
  let challengeTtlS = 0;
  if (ctx.config.challengePolicy === 'required') {
    const solution = req.headers['x-altcha'];
    if (typeof solution !== 'string' || solution === '') {
      throw new ProblemError('challenge_required', 'solve GET /v1/challenge and send it in X-Altcha');
    }
    const verified = await ctx.challenges.verify(solution);
    if (verified === null) throw new ProblemError('challenge_failed', 'the solution is invalid or expired');
    challengeId = verified.challengeId;
    challengeTtlS = verified.expiresAtS - Math.floor(now / 1000) + 1;
  }

  const voteId = randomUUID();
  const request = `${pollId}\n${body.optionId}\n${body.castAt ?? ''}`;
  const keys = ctx.guards.keys(pollId, principal.voterId, idempotencyKey);
  const guardValue = `${voteId}|${body.optionId}|${now}`;
  const idemPending = JSON.stringify({ s: 'P', b: request, v: voteId } satisfies IdempotencyRecord);
  let admission: Awaited<ReturnType<VoteGuards['admit']>>;
  try {
    admission = await ctx.guards.admit({ ...keys, guardValue, idemPending, challengeId, challengeTtlS });
  } catch (err) {
    ctx.logger.error({ err }, 'vote admission failed (Redis)');
    throw new ProblemError('unavailable', 'the vote guard store is unreachable', undefined, 2);
  }
  switch (admission.kind) {
    case 'idempotent': {
      const record = admission.record;
      if (record.b !== request) {
        throw new ProblemError('idempotency_key_reused', 'this Idempotency-Key was used with a different request');
      }
      if (record.s === 'P') {
        throw new ProblemError(
          'unavailable',
          'the original request with this Idempotency-Key is still in flight',
          undefined,
          1,
        );
      }
      ctx.metrics.voteOutcome('replayed').inc();
      res.status(202).json(record.r);
      return;
    }
    case 'already_voted':
      throw new ProblemError('already_voted', `voter already voted in poll ${pollId}`, { voteId: admission.voteId });
    case 'challenge_replayed':
      throw new ProblemError('challenge_failed', 'this solution was already used');
    case 'admitted':
      break;
  }

  const release = () =>
    ctx.guards
      .release({ ...keys, guardValue, idemPending, challengeId, voteId })
      .catch((err: unknown) => ctx.logger.error({ err, pollId }, 'could not release the vote guard'));
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
      attestation: header(req, 'x-attestation', headerCharsMax),
    },
  };
  let acked: Promise<void>;
  try {
    acked = ctx.batcher.submit({ key: voteKey(pollId, principal.voterId), value: ctx.encodeVote(vote) });
  } catch (err) {
    await release();
    if (err instanceof BatcherFullError) throw new ProblemError('unavailable', err.message, undefined, err.retryAfterS);
    throw err;
  }
  try {
    await acked;
  } catch (err) {
    await release();
    ctx.logger.warn({ err: (err as Error).message }, 'vote not acknowledged by Kafka');
    throw new ProblemError(
      'unavailable',
      'Kafka did not acknowledge the vote; retry with the same Idempotency-Key',
      undefined,
      2,
    );
  }
  const answer = acceptedJson(voteId, pollId, body.optionId);
  // Best effort: if Redis lost this write, the pending guard and record expire after VOTE_PENDING_TTL_S and a
  // resend is admitted again; the stream's dedupe then rejects the second copy as a duplicate.
  await ctx.guards
    .complete(keys, guardValue, `{"s":"D","b":${JSON.stringify(request)},"v":"${voteId}","r":${answer}}`)
    .catch((err: unknown) => ctx.logger.warn({ err }, 'could not store the idempotent answer'));
  ctx.metrics.voteOutcome('accepted').inc();
  ctx.metrics.voteSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  sendJson(res, 202, answer);
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
  app.set('trust proxy', ctx.config.trustProxyHops);
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
  app.get('/metrics', async (_req, res) => {
    res.type(ctx.registry.contentType).send(await ctx.registry.metrics());
  });
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(spec);
  });

  app.get('/v1/challenge', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(await ctx.challenges.issue());
  });

  app.post('/v1/polls', json, async (req, res) => {
    await authenticate(ctx, req, ctx.config.jwtAdminScope);
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
    const type = (err as { type?: unknown }).type;
    if (
      typeof type === 'string' &&
      (type.startsWith('entity.') || type.endsWith('.unsupported') || type === 'request.aborted')
    ) {
      const code: ProblemCode = 'invalid_body';
      sendProblem(
        res,
        code,
        type === 'entity.too.large' ? `body larger than ${ctx.config.bodyLimitBytes} bytes` : 'malformed JSON body',
      );
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
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    // Bounded, so a dead broker turns into 503s (and the voter's retry) instead of requests that never end.
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 },
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
      retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 },
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
    }),
    challenges: createChallengeIssuer({
      hmacKey: config.altchaHmacKey,
      maxNumber: config.altchaMaxNumber,
      expiresS: config.altchaExpiresS,
    }),
    rateLimits: createRateLimits({
      redis,
      keyPrefix: config.redisPrefix,
      voterPoints: config.rateVoterPoints,
      voterDurationS: config.rateVoterDurationS,
      networkPoints: config.rateNetworkPoints,
      networkDurationS: config.rateNetworkDurationS,
    }),
    guards: createVoteGuards(redis, config.redisPrefix, {
      guardS: config.voteGuardTtlS,
      idempotencyS: config.idempotencyTtlS,
      pendingS: config.votePendingTtlS,
    }),
    catalog,
    pollAdmin: new PollAdmin(producer, topics.polls, serde.encoder('PollEvent'), catalog, redis, config.redisPrefix),
    batcher,
    encodeVote: serde.encoder('VoteCast', { validate: false }),
    readModels: createReadModels({ redis, cql, keyspace: config.cqlKeyspace, redisPrefix: config.redisPrefix, logger }),
    isReady: () => !stopping && catalog.ready && kafkaOk && !batcher.failing && redis.status === 'ready',
  };
  const app = createIngestApp(ctx);
  const server = createServer(app);
  server.keepAliveTimeout = 65_000; // longer than an AWS ALB's idle timeout (60 s)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, topics: topics.votes }, 'ingest listening');

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
      redis.disconnect();
      logger.info('ingest stopped');
    })();
    return closing;
  };
  return { url: `http://127.0.0.1:${port}`, port, server, catalog, metrics: registry, close };
}
