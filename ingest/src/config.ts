import { readFileSync } from 'node:fs';
import {
  type CommonConfig,
  ConfigError,
  envReader,
  type HttpServerLimits,
  loadCommonConfig,
  loadHttpServerLimits,
  readSecret,
  secretPath,
} from '@votestream/runtime';
import { type ClientAddressSource, parseCidrs } from './http/client-address.ts';
import { catalogPollsMax } from './polls/catalog.ts';

type Env = Record<string, string | undefined>;

/**
 * Everything ingest needs, validated once at start-up. Tests build one with their own ports,
 * topic prefix, Redis prefix and keys (`loadIngestConfig({ ...env })` or by spreading a loaded one).
 */
export interface IngestConfig extends CommonConfig {
  port: number;
  /** Prometheus `/metrics` port (never the public API port). */
  metricsPort: number;
  /** Timeouts and connection cap of the public HTTP server. */
  http: HttpServerLimits;
  /** Where the client's address (for the per-network limits) comes from; see http/client-address.ts. */
  clientAddressSource: ClientAddressSource;
  /** Proxies in front that append to X-Forwarded-For (the ALB: 1). Used by `alb`, and by `cloudfront` as fallback. */
  trustProxyHops: number;
  /** CIDRs the trusted proxies (ALB nodes) connect from; forwarding headers from any other peer are ignored. */
  trustedProxyCidrs: string[];

  /** Voter/admin tokens: a PEM public key (SPKI, Ed25519 or P-256) or a JWKS URL; exactly one. */
  jwtPublicKeyPem: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string;
  jwtAudience: string;
  jwtAdminScope: string;
  /** Clock skew tolerated on exp/nbf/iat. */
  jwtClockToleranceS: number;
  /** Tokens whose `iat` is older than this are refused, whatever their `exp`. */
  jwtMaxTokenAgeS: number;
  /** Live entries the jti revocation list holds at most (auth/revocations.ts). */
  tokenRevocationsMax: number;

  /** ALTCHA HMAC key (hex text, used as the HMAC secret). */
  altchaHmacKey: string;
  /** Upper bound of the secret counter (ALTCHA deterministic mode): expected work is maxNumber/2 SHA-256 on the device. */
  altchaMaxNumber: number;
  /** The most adaptive difficulty may raise altchaMaxNumber to. */
  altchaMaxNumberCeiling: number;
  /** Challenge issuance: counting window, per-voter cap, and the baselines above which difficulty rises. */
  challengeWindowS: number;
  challengeVoterMax: number;
  challengeVoterBaseline: number;
  challengeNetworkBaseline: number;
  challengeDeviceBaseline: number;
  altchaExpiresS: number;
  /** `required` (default): votes without a solved challenge get 403. `off`: for load tests only. */
  challengePolicy: 'required' | 'off';

  /** Rate limits: points per duration, per voter and per network prefix (/24 or /48). */
  rateVoterPoints: number;
  rateVoterDurationS: number;
  rateNetworkPoints: number;
  rateNetworkDurationS: number;
  /** Instances sharing the rate budgets while Redis is unreachable (the autoscaler maximum in production). */
  rateFallbackFleetSize: number;
  /** Poll creations per admin (`sub`) per window. */
  ratePollCreatePoints: number;
  ratePollCreateDurationS: number;
  /** Polls this deployment accepts; creation beyond it is 409 poll_limit_reached, before anything is written. */
  pollsMax: number;

  /** Bounded produce batcher. */
  produceVotesInFlightMax: number;
  produceBatchMessagesMax: number;
  produceLingerMs: number;
  produceTimeoutMs: number;
  /** After a failed send, new votes get 503 at once for this long instead of queueing behind a dead broker. */
  produceBackoffMs: number;
  /** KafkaJS request timeout of ingest's connections (longer than produceTimeoutMs, the broker's acks wait). */
  produceRequestTimeoutMs: number;
  /** KafkaJS retries of one produce (the idempotent producer needs at least 1). */
  produceRetries: number;

  /** How long the per-voter vote guard and idempotency records live in Redis. */
  voteGuardTtlS: number;
  idempotencyTtlS: number;
  /**
   * The lease of an admitted vote: after this long (from admission) the admitting process can no longer append
   * it to Kafka (the batcher refuses to send it later than this minus `produceAppendBoundMs`). Until the lease
   * expires, other attempts of the voter get 503; after it, an unanswered vote is resolved from the stream's
   * decision (votes/resolution.ts). At least produceAppendBoundMs + PRODUCE_LINGER_MS + 2 s.
   */
  voteProduceDeadlineMs: number;
  /**
   * A vote Kafka acknowledged later than its poll's close + this is answered 503, not 202: the stream may already
   * have finalised the poll (at close + STREAM_GRACE_MS + STREAM_IDLE_TIMEOUT_MS at the earliest) and decided it
   * POLL_CLOSED. Keep it at most STREAM_GRACE_MS.
   */
  voteCloseAckGraceMs: number;
  /**
   * An admin's close takes effect this long after the request (closedAt = request time + this), so that every
   * instance's catalog has read the close before votes are refused by it: a vote received after the close on an
   * instance that had not read it yet would be answered 202 and decided POLL_CLOSED by the stream.
   */
  pollCloseLeadMs: number;
  /** Consumer group of the stream's dedupe stage (`<STREAM_APPLICATION_ID>-dedupe`), for the resolution barrier. */
  dedupeGroupId: string;
  /** Consumer group of projections' receipts projector (`<PROJECTIONS_GROUP_ID>-receipts`), same. */
  receiptsGroupId: string;
  /** Bytes; larger bodies are refused with 400 invalid_body before parsing. */
  bodyLimitBytes: number;
  /** SIGTERM: the longest the drain may take before the process exits anyway. */
  shutdownDrainMs: number;
}

/** KafkaJS connect timeout of ingest's broker connections. */
export const kafkaConnectionTimeoutMs = 3000;
/** KafkaJS's longest back-off between two retries of one produce (`retry.maxRetryTime`). */
export const produceRetryTimeMaxMs = 1000;

/**
 * The longest time from handing a batch to the producer until no request of it can append any more: every
 * attempt may take a connect plus a request timeout (a request the broker has not processed within the request
 * timeout is assumed never to be), plus the back-off between attempts.
 */
export function produceAppendBoundMs(p: { connectionTimeoutMs: number; requestTimeoutMs: number; retries: number }) {
  return (p.retries + 1) * (p.connectionTimeoutMs + p.requestTimeoutMs) + p.retries * produceRetryTimeMaxMs;
}

function readKeyFile(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${name}=${path} cannot be read: ${(err as Error).message}`);
  }
}

export function loadIngestConfig(env: Env = process.env): IngestConfig {
  const r = envReader(env);
  const common = loadCommonConfig('ingest', env);
  const jwksUrl = r.optionalString('JWT_JWKS_URL');
  // Without a JWKS URL the key is a file: SECRETS_DIR/dev-jwt-public.pem (the local stack's dev key pair) by default.
  const keyFile = jwksUrl ? undefined : secretPath(env, 'JWT_PUBLIC_KEY_FILE', 'dev-jwt-public.pem');
  if (jwksUrl && r.optionalString('JWT_PUBLIC_KEY_FILE')) {
    throw new ConfigError('set JWT_JWKS_URL or JWT_PUBLIC_KEY_FILE, not both');
  }
  const produce = {
    connectionTimeoutMs: kafkaConnectionTimeoutMs,
    requestTimeoutMs: r.int('PRODUCE_REQUEST_TIMEOUT_MS', 10_000, { min: 500, max: 120_000 }),
    retries: r.int('PRODUCE_RETRIES', 3, { min: 1, max: 10 }),
  };
  const produceTimeoutMs = r.int('PRODUCE_TIMEOUT_MS', 5000, { min: 100, max: 60_000 });
  if (produce.requestTimeoutMs <= produceTimeoutMs) {
    throw new ConfigError('PRODUCE_REQUEST_TIMEOUT_MS must be longer than PRODUCE_TIMEOUT_MS (the broker acks wait)');
  }
  const produceLingerMs = r.int('PRODUCE_LINGER_MS', 2, { min: 0, max: 1000 });
  const deadlineMinMs = produceAppendBoundMs(produce) + produceLingerMs + 2000;
  const voteProduceDeadlineMs = r.int('VOTE_PRODUCE_DEADLINE_MS', Math.max(60_000, deadlineMinMs), {
    min: 1000,
    max: 3_600_000,
  });
  if (voteProduceDeadlineMs < deadlineMinMs) {
    throw new ConfigError(
      `VOTE_PRODUCE_DEADLINE_MS must be at least ${deadlineMinMs} with these PRODUCE_RETRIES / PRODUCE_REQUEST_TIMEOUT_MS / PRODUCE_LINGER_MS`,
    );
  }
  const voteCloseAckGraceMs = r.int('VOTE_CLOSE_ACK_GRACE_MS', 2000, { min: 0, max: 3_600_000 });
  const pollCloseLeadMs = r.int('POLL_CLOSE_LEAD_MS', 1000, { min: 0, max: 60_000 });
  const config: IngestConfig = {
    ...common,
    voteCloseAckGraceMs,
    pollCloseLeadMs,
    port: r.int('INGEST_PORT', 8080, { min: 0, max: 65535 }),
    metricsPort: r.int('INGEST_METRICS_PORT', 9471, { min: 0, max: 65535 }),
    http: loadHttpServerLimits(r, { connectionsMax: 10_000 }),
    clientAddressSource: r.oneOf('CLIENT_ADDRESS_SOURCE', ['socket', 'alb', 'cloudfront'] as const, 'socket'),
    trustProxyHops: r.int('TRUST_PROXY_HOPS', 1, { min: 0, max: 10 }),
    // The private ranges a VPC's ALB nodes connect from; narrow to the ALB subnets in production.
    trustedProxyCidrs: r.list('TRUSTED_PROXY_CIDRS', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']),
    jwtPublicKeyPem: keyFile ? readKeyFile('JWT_PUBLIC_KEY_FILE', keyFile) : undefined,
    jwtJwksUrl: jwksUrl,
    jwtIssuer: r.string('JWT_ISSUER', 'votestream-dev'),
    jwtAudience: r.string('JWT_AUDIENCE', 'votestream'),
    jwtAdminScope: r.string('JWT_ADMIN_SCOPE', 'votestream:admin'),
    jwtClockToleranceS: r.int('JWT_CLOCK_TOLERANCE_S', 5, { min: 0, max: 300 }),
    // A voter token lives for one show night; an older one (a leaked token, a ten-year token) is refused.
    jwtMaxTokenAgeS: r.int('JWT_MAX_TOKEN_AGE_S', 24 * 3600, { min: 60, max: 30 * 24 * 3600 }),
    tokenRevocationsMax: r.int('TOKEN_REVOCATIONS_MAX', 100_000, { min: 1, max: 10_000_000 }),
    altchaHmacKey: readSecret(env, 'ALTCHA_HMAC_KEY_FILE', 'altcha-hmac.key'),
    // 50k: 25k SHA-256 on average. The SDK's WebCrypto solver does ~38k hashes/s on one core of the 2-core CI
    // machine (bench/sdk-pow.ts), so a voter waits well under a second, while a bot farm pays it per vote (one
    // challenge, one vote). Tests and the demo set 1000-2000.
    altchaMaxNumber: r.int('ALTCHA_MAX_NUMBER', 50_000, { min: 10, max: 10_000_000 }),
    // 16x the base: ~10 s on a phone; what a venue's NAT sharing one /24 may cost its voters at worst.
    altchaMaxNumberCeiling: r.int('ALTCHA_MAX_NUMBER_CEILING', 800_000, { min: 10, max: 100_000_000 }),
    altchaExpiresS: r.int('ALTCHA_EXPIRES_S', 300, { min: 5, max: 3600 }),
    challengeWindowS: r.int('CHALLENGE_WINDOW_S', 60, { min: 1, max: 3600 }),
    // One challenge per vote, a rechallenge or two: a voter in several polls needs a handful per minute.
    challengeVoterMax: r.int('CHALLENGE_VOTER_MAX', 20, { min: 1 }),
    challengeVoterBaseline: r.int('CHALLENGE_VOTER_BASELINE', 5, { min: 1 }),
    challengeNetworkBaseline: r.int('CHALLENGE_NETWORK_BASELINE', 2000, { min: 1 }),
    challengeDeviceBaseline: r.int('CHALLENGE_DEVICE_BASELINE', 5, { min: 1 }),
    challengePolicy: r.oneOf('CHALLENGE_POLICY', ['required', 'off'] as const, 'required'),
    // A voter votes once per poll; 30 requests a minute covers retries and several polls.
    rateVoterPoints: r.int('RATE_VOTER_POINTS', 30, { min: 1 }),
    rateVoterDurationS: r.int('RATE_VOTER_DURATION_S', 60, { min: 1 }),
    // One /24 can be a stadium or a mobile carrier's NAT pool: tens of thousands of real voters.
    // This is a flood cap per network, not the bot defence (tokens, proof of work and one vote per voter are).
    rateNetworkPoints: r.int('RATE_NETWORK_POINTS', 5000, { min: 1 }),
    rateNetworkDurationS: r.int('RATE_NETWORK_DURATION_S', 1, { min: 1 }),
    rateFallbackFleetSize: r.int('RATE_FALLBACK_FLEET_SIZE', 1, { min: 1, max: 10_000 }),
    ratePollCreatePoints: r.int('RATE_POLL_CREATE_POINTS', 60, { min: 1 }),
    ratePollCreateDurationS: r.int('RATE_POLL_CREATE_DURATION_S', 60, { min: 1 }),
    // Below the catalog's hard bound: instances check against their own catalog, so concurrent creations on
    // several instances can overshoot by a few (each bounded by RATE_POLL_CREATE_POINTS); the headroom absorbs it.
    pollsMax: r.int('POLLS_MAX', catalogPollsMax - 1000, { min: 1, max: catalogPollsMax - 1000 }),
    produceVotesInFlightMax: r.int('PRODUCE_VOTES_IN_FLIGHT_MAX', 20_000, { min: 1 }),
    produceBatchMessagesMax: r.int('PRODUCE_BATCH_MESSAGES_MAX', 1000, { min: 1, max: 100_000 }),
    produceLingerMs,
    produceTimeoutMs,
    produceBackoffMs: r.int('PRODUCE_BACKOFF_MS', 1000, { min: 0, max: 60_000 }),
    produceRequestTimeoutMs: produce.requestTimeoutMs,
    produceRetries: produce.retries,
    voteGuardTtlS: r.int('VOTE_GUARD_TTL_S', 7 * 24 * 3600, { min: 60 }),
    idempotencyTtlS: r.int('IDEMPOTENCY_TTL_S', 24 * 3600, { min: 60 }),
    voteProduceDeadlineMs,
    dedupeGroupId: `${r.string('STREAM_APPLICATION_ID', 'votestream-stream')}-dedupe`,
    receiptsGroupId: `${r.string('PROJECTIONS_GROUP_ID', `${common.topicPrefix}projections`)}-receipts`,
    bodyLimitBytes: r.int('BODY_LIMIT_BYTES', 4096, { min: 256, max: 1_048_576 }),
    shutdownDrainMs: r.int('SHUTDOWN_DRAIN_MS', 15_000, { min: 100 }),
  };
  try {
    parseCidrs(config.trustedProxyCidrs);
  } catch (err) {
    throw new ConfigError(`TRUSTED_PROXY_CIDRS: ${(err as Error).message}`);
  }
  if (config.altchaMaxNumberCeiling < config.altchaMaxNumber) {
    throw new ConfigError('ALTCHA_MAX_NUMBER_CEILING must be at least ALTCHA_MAX_NUMBER');
  }
  return config;
}
