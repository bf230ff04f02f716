import { readFileSync } from 'node:fs';
import {
  type CommonConfig,
  ConfigError,
  envReader,
  loadCommonConfig,
  readSecret,
  secretPath,
} from '@votestream/runtime';

type Env = Record<string, string | undefined>;

/**
 * Everything ingest needs, validated once at start-up. Tests build one with their own ports,
 * topic prefix, Redis prefix and keys (`loadIngestConfig({ ...env })` or by spreading a loaded one).
 */
export interface IngestConfig extends CommonConfig {
  port: number;
  /** Express `trust proxy`: hops of load balancers whose X-Forwarded-For is believed (0 = use the socket address). */
  trustProxyHops: number;

  /** Voter/admin tokens: a PEM public key (SPKI, Ed25519 or P-256) or a JWKS URL; exactly one. */
  jwtPublicKeyPem: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string;
  jwtAudience: string;
  jwtAdminScope: string;
  /** Clock skew tolerated on exp/nbf. */
  jwtClockToleranceS: number;

  /** ALTCHA HMAC key (hex text, used as the HMAC secret). */
  altchaHmacKey: string;
  /** Upper bound of the secret counter (ALTCHA deterministic mode): expected work is maxNumber/2 SHA-256 on the device. */
  altchaMaxNumber: number;
  altchaExpiresS: number;
  /** `required` (default): votes without a solved challenge get 403. `off`: for load tests only. */
  challengePolicy: 'required' | 'off';

  /** Rate limits: points per duration, per voter and per network prefix (/24 or /48). */
  rateVoterPoints: number;
  rateVoterDurationS: number;
  rateNetworkPoints: number;
  rateNetworkDurationS: number;

  /** Bounded produce batcher. */
  produceVotesInFlightMax: number;
  produceBatchMessagesMax: number;
  produceLingerMs: number;
  produceTimeoutMs: number;
  /** After a failed send, new votes get 503 at once for this long instead of queueing behind a dead broker. */
  produceBackoffMs: number;

  /** How long the per-voter vote guard and idempotency records live in Redis. */
  voteGuardTtlS: number;
  idempotencyTtlS: number;
  /**
   * How long a vote's guard and idempotency record live while its produce is in flight. Only after Kafka's
   * acknowledgement are they extended to their full TTLs, so an ingest process that dies mid-produce (SIGKILL,
   * OOM, lost node) blocks its voter for at most this long, never for days. Longer than the produce timeout.
   */
  votePendingTtlS: number;
  /** Bytes; larger bodies are refused with 400 invalid_body before parsing. */
  bodyLimitBytes: number;
  /** SIGTERM: the longest the drain may take before the process exits anyway. */
  shutdownDrainMs: number;
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
  return {
    ...common,
    port: r.int('INGEST_PORT', 8080, { min: 0, max: 65535 }),
    trustProxyHops: r.int('TRUST_PROXY_HOPS', 0, { min: 0, max: 10 }),
    jwtPublicKeyPem: keyFile ? readKeyFile('JWT_PUBLIC_KEY_FILE', keyFile) : undefined,
    jwtJwksUrl: jwksUrl,
    jwtIssuer: r.string('JWT_ISSUER', 'votestream-dev'),
    jwtAudience: r.string('JWT_AUDIENCE', 'votestream'),
    jwtAdminScope: r.string('JWT_ADMIN_SCOPE', 'votestream:admin'),
    jwtClockToleranceS: r.int('JWT_CLOCK_TOLERANCE_S', 5, { min: 0, max: 300 }),
    altchaHmacKey: readSecret(env, 'ALTCHA_HMAC_KEY_FILE', 'altcha-hmac.key'),
    // 50k: 25k SHA-256 on average. The SDK's WebCrypto solver does ~38k hashes/s on one core of the 2-core CI
    // machine (bench/sdk-pow.ts), so a voter waits well under a second, while a bot farm pays it per vote (one
    // challenge, one vote). Tests and the demo set 1000-2000.
    altchaMaxNumber: r.int('ALTCHA_MAX_NUMBER', 50_000, { min: 10, max: 10_000_000 }),
    altchaExpiresS: r.int('ALTCHA_EXPIRES_S', 300, { min: 5, max: 3600 }),
    challengePolicy: r.oneOf('CHALLENGE_POLICY', ['required', 'off'] as const, 'required'),
    // A voter votes once per poll; 30 requests a minute covers retries and several polls.
    rateVoterPoints: r.int('RATE_VOTER_POINTS', 30, { min: 1 }),
    rateVoterDurationS: r.int('RATE_VOTER_DURATION_S', 60, { min: 1 }),
    // One /24 can be a stadium or a mobile carrier's NAT pool: tens of thousands of real voters.
    // This is a flood cap per network, not the bot defence (tokens, proof of work and one vote per voter are).
    rateNetworkPoints: r.int('RATE_NETWORK_POINTS', 5000, { min: 1 }),
    rateNetworkDurationS: r.int('RATE_NETWORK_DURATION_S', 1, { min: 1 }),
    produceVotesInFlightMax: r.int('PRODUCE_VOTES_IN_FLIGHT_MAX', 20_000, { min: 1 }),
    produceBatchMessagesMax: r.int('PRODUCE_BATCH_MESSAGES_MAX', 1000, { min: 1, max: 100_000 }),
    produceLingerMs: r.int('PRODUCE_LINGER_MS', 2, { min: 0, max: 1000 }),
    produceTimeoutMs: r.int('PRODUCE_TIMEOUT_MS', 5000, { min: 100, max: 60_000 }),
    produceBackoffMs: r.int('PRODUCE_BACKOFF_MS', 1000, { min: 0, max: 60_000 }),
    voteGuardTtlS: r.int('VOTE_GUARD_TTL_S', 7 * 24 * 3600, { min: 60 }),
    idempotencyTtlS: r.int('IDEMPOTENCY_TTL_S', 24 * 3600, { min: 60 }),
    votePendingTtlS: r.int('VOTE_PENDING_TTL_S', 30, { min: 2, max: 3600 }),
    bodyLimitBytes: r.int('BODY_LIMIT_BYTES', 4096, { min: 256, max: 1_048_576 }),
    shutdownDrainMs: r.int('SHUTDOWN_DRAIN_MS', 15_000, { min: 100 }),
  };
}
