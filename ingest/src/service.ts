import type { Server } from 'node:http';
import { createReadModels } from '@votestream/read-models';
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
  requireTopics,
  startMetricsServer,
  topicNames,
} from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import type { Admin, ISocketFactory } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createChallengeIssuer } from './abuse/challenge.ts';
import { createChallengePolicy } from './abuse/challenge-policy.ts';
import { createKeyedLimit, createRateLimits } from './abuse/rate-limit.ts';
import { createIngestApp } from './app.ts';
import { createTokenRevocations } from './auth/revocations.ts';
import {
  cachedTokenVerifier,
  createTokenVerifier,
  type TokenVerifier,
  verifiedTokenReuseSMax,
  verifiedTokensMax,
} from './auth/tokens.ts';
import { type IngestConfig, kafkaConnectionTimeoutMs, produceAppendBoundMs, produceRetryTimeMaxMs } from './config.ts';
import type { IngestContext, VoteFaults } from './context.ts';
import { createClientAddressResolver } from './http/client-address.ts';
import { createIngestMetrics, registerIngestGauges } from './metrics.ts';
import { PollAdmin } from './polls/admin.ts';
import { PollCatalog } from './polls/catalog.ts';
import { createVoteGuards } from './votes/admission.ts';
import { type BatcherLimits, VoteBatcher } from './votes/batcher.ts';
import { createResettingProducer } from './votes/producer.ts';
import { createResolver } from './votes/resolution.ts';

export type { VoteFaults } from './context.ts';

/** Things a test may replace: how Kafka connections are opened (to put a proxy in front of the broker). */
export interface IngestDeps {
  kafkaSocketFactory?: ISocketFactory;
  logger?: Logger;
  /** Fault injection for tests only (see VoteFaults). */
  faults?: VoteFaults;
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

/** KafkaJS's first back-off between two retries (of a produce, of an admin request). */
const kafkaRetryTimeInitialMs = 100;
/** How often readiness asks the cluster whether it is there (`describeCluster`). */
const kafkaProbeIntervalMs = 2000;
/** Redis connect and per-command timeouts: a command that takes longer fails (503 or the limiter's fallback). */
const redisTimeoutMs = 2000;
/** One produce request on the wire at a time, the next batch filling meanwhile (BatcherLimits.sendsInFlightMax). */
const produceSendsInFlightMax = 1;
/** How long one request waits for the stream's decision on a stale guard (votes/resolution.ts) before 503. */
const resolutionWaitMs = 3000;
/** Stale-guard resolutions in progress at once in this process (each polls the Kafka admin API). */
const resolutionsInProgressMax = 1000;
/** After the drain, disconnecting from Kafka and CQL may take this long at most (a broker that is gone). */
const disconnectBoundMs = 5000;

/** The longest `close()` takes: the drain budget, then the bounded disconnects. For the process's shutdown timer. */
export function ingestStopBoundMs(config: Pick<IngestConfig, 'shutdownDrainMs'>): number {
  return config.shutdownDrainMs + disconnectBoundMs;
}

/** The token verifier of this config (JWT_* variables), reusing verifications of a token (auth/tokens.ts). */
export function tokenVerifierOf(config: IngestConfig, nowMs: () => number = Date.now): TokenVerifier {
  const verify = createTokenVerifier({
    publicKeyPem: config.jwtPublicKeyPem,
    jwksUrl: config.jwtJwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceS: config.jwtClockToleranceS,
    maxTokenAgeS: config.jwtMaxTokenAgeS,
  });
  return cachedTokenVerifier(verify, { entriesMax: verifiedTokensMax, reuseSMax: verifiedTokenReuseSMax, nowMs });
}

/** The vote batcher's bounds from this config (PRODUCE_* variables). */
export function batcherLimitsOf(config: IngestConfig): BatcherLimits {
  return {
    votesInFlightMax: config.produceVotesInFlightMax,
    batchMessagesMax: config.produceBatchMessagesMax,
    lingerMs: config.produceLingerMs,
    produceTimeoutMs: config.produceTimeoutMs,
    backoffMs: config.produceBackoffMs,
    sendsInFlightMax: produceSendsInFlightMax,
  };
}

/**
 * Builds everything from the config, waits until the poll catalog caught up, and listens.
 * Tests call it with their own config (ports, topic prefix, Redis prefix, keys).
 */
export async function startIngest(config: IngestConfig, deps: IngestDeps = {}): Promise<IngestHandle> {
  const logger = deps.logger ?? createLogger('ingest', config.logLevel);
  const topics = topicNames(config.topicPrefix);
  const registry = createMetricsRegistry('ingest');
  // Bounded, so a dead broker turns into 503s (and the voter's retry) instead of requests that never end.
  // These also bound how long after a send a vote can still append (produceAppendBoundMs, the vote's lease).
  const retry = {
    initialRetryTime: kafkaRetryTimeInitialMs,
    maxRetryTime: produceRetryTimeMaxMs,
    retries: config.produceRetries,
  };
  const kafka = createKafka({
    clientId: `ingest-${process.pid}`,
    brokers: config.kafkaBrokers,
    security: config.kafkaSecurity,
    logger,
    connectionTimeout: kafkaConnectionTimeoutMs,
    requestTimeout: config.produceRequestTimeoutMs,
    retry: { ...retry },
    ...(deps.kafkaSocketFactory ? { socketFactory: deps.kafkaSocketFactory } : {}),
  });
  const serde = await createAvroSerde({ registryUrl: config.schemaRegistryUrl, records: ['VoteCast', 'PollEvent'] });
  const redis = createRedis(config, {
    // Many concurrent votes' commands leave in one write: one round trip carries hundreds of requests.
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    connectTimeout: redisTimeoutMs,
    commandTimeout: redisTimeoutMs,
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
      retry: { ...retry },
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
  }, kafkaProbeIntervalMs);
  probe.unref();

  const metrics = createIngestMetrics(registry);
  const batcher = new VoteBatcher(producer, topics.votes, batcherLimitsOf(config), metrics);
  registerIngestGauges(registry, { inFlight: () => batcher.votesInFlight, polls: () => catalog.size });

  const readModels = createReadModels({
    redis,
    cql,
    keyspace: config.cqlKeyspace,
    redisPrefix: config.redisPrefix,
    logger,
  });
  const ctx: IngestContext = {
    config,
    logger,
    metrics,
    now: Date.now,
    verifyToken: tokenVerifierOf(config),
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
      config.pollCloseLeadMs,
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
      waitMs: resolutionWaitMs,
      inProgressMax: resolutionsInProgressMax,
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
          giveUp = setTimeout(resolve, disconnectBoundMs);
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
