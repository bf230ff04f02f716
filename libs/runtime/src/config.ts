/**
 * Configuration from environment variables, validated once at start-up.
 * A bad value fails fast with an error that names the variable, never later on the hot path.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

export interface Reader {
  string(name: string, fallback?: string): string;
  optionalString(name: string): string | undefined;
  int(name: string, fallback: number, bounds?: { min?: number; max?: number }): number;
  bool(name: string, fallback: boolean): boolean;
  list(name: string, fallback: string[]): string[];
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T;
  /** Like string/list, with a fallback that only fits the local stack (an address on 127.0.0.1, a dev secret). */
  stackString(name: string, localFallback: string): string;
  stackList(name: string, localFallback: string[]): string[];
}

/**
 * `LOCAL_STACK_DEFAULTS=false` (the image sets it) turns off every default that only fits the local stack:
 * addresses on 127.0.0.1 and `.stack/secrets`. A deployment that forgets one of those settings then fails at
 * start-up with a ConfigError naming it, instead of dialling 127.0.0.1 inside a container.
 */
export function localStackDefaults(env: Env = process.env): boolean {
  const v = env.LOCAL_STACK_DEFAULTS?.trim();
  if (v === undefined || v === '' || v === 'true') return true;
  if (v === 'false') return false;
  throw new ConfigError(`LOCAL_STACK_DEFAULTS must be true or false, got ${JSON.stringify(v)}`);
}

function requireLocalDefault(env: Env, name: string): void {
  if (!localStackDefaults(env)) {
    throw new ConfigError(`${name} is required: LOCAL_STACK_DEFAULTS=false, so it has no local-stack default`);
  }
}

/** Returns typed readers over `env`; each throws ConfigError naming the variable when its value is unusable. */
export function envReader(env: Env = process.env): Reader {
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  return {
    string(name, fallback) {
      const v = raw(name) ?? fallback;
      if (v === undefined) throw new ConfigError(`${name} is required but not set`);
      return v;
    },
    optionalString(name) {
      return raw(name);
    },
    int(name, fallback, bounds = {}) {
      const v = raw(name);
      const n = v === undefined ? fallback : Number(v);
      if (!Number.isInteger(n)) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(v)}`);
      if (bounds.min !== undefined && n < bounds.min)
        throw new ConfigError(`${name} must be >= ${bounds.min}, got ${n}`);
      if (bounds.max !== undefined && n > bounds.max)
        throw new ConfigError(`${name} must be <= ${bounds.max}, got ${n}`);
      return n;
    },
    bool(name, fallback) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (v === 'true' || v === '1') return true;
      if (v === 'false' || v === '0') return false;
      throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(v)}`);
    },
    list(name, fallback) {
      const v = raw(name);
      if (v === undefined) return fallback;
      const items = v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (items.length === 0) throw new ConfigError(`${name} must be a comma-separated list, got ${JSON.stringify(v)}`);
      return items;
    },
    stackString(name, localFallback) {
      const v = raw(name);
      if (v !== undefined) return v;
      requireLocalDefault(env, name);
      return localFallback;
    },
    stackList(name, localFallback) {
      if (raw(name) === undefined) requireLocalDefault(env, name);
      return this.list(name, localFallback);
    },
    oneOf(name, choices, fallback) {
      const v = raw(name) ?? fallback;
      if (!(choices as readonly string[]).includes(v)) {
        throw new ConfigError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
      }
      return v as (typeof choices)[number];
    },
  };
}

/** How clients reach Kafka. Defaults (local stack): plaintext, no authentication. */
export interface KafkaSecurity {
  /** TLS to the brokers (MSK: always). */
  ssl: boolean;
  /** PEM of the CA that signed the brokers' certificates; undefined = Node's public CA bundle (MSK's certificates chain to it). */
  caPem?: string | undefined;
  sasl?: KafkaSasl | undefined;
}

export type KafkaSasl =
  | { mechanism: 'scram-sha-512'; username: string; password: string }
  /** AWS MSK IAM: SASL/OAUTHBEARER with tokens signed by the pod's AWS credentials (IRSA). */
  | { mechanism: 'aws-msk-iam'; region: string };

/** How clients reach CQL. Defaults (local stack): plaintext, no authentication. */
export interface CqlSecurity {
  tls: boolean;
  /** PEM of the CA that signed the nodes' certificates; undefined = Node's public CA bundle. */
  caPem?: string | undefined;
  /** PasswordAuthenticator credentials; undefined = no authentication. */
  auth?: { username: string; password: string } | undefined;
}

/** Settings every service shares: where the local stack (or production) services are. Defaults fit compose/. */
export interface CommonConfig {
  serviceName: string;
  kafkaBrokers: string[];
  kafkaSecurity: KafkaSecurity;
  schemaRegistryUrl: string;
  /** Prefix of every Kafka topic name, so tests and tenants can run side by side on one cluster. */
  topicPrefix: string;
  cqlContactPoints: string[];
  cqlLocalDataCenter: string;
  cqlKeyspace: string;
  cqlSecurity: CqlSecurity;
  /** `redis://` (plaintext) or `rediss://` (TLS); in cluster mode its host:port is the seed (ElastiCache configuration endpoint). */
  redisUrl: string;
  /** Redis Cluster (ElastiCache cluster mode): `Redis.Cluster` seeded from redisUrl. */
  redisCluster: boolean;
  /** AUTH password (ElastiCache AUTH token) read from REDIS_PASSWORD_FILE; undefined = none (or the one in the URL). */
  redisPassword?: string | undefined;
  /** PEM of the CA for `rediss://`; undefined = Node's public CA bundle (ElastiCache's certificates chain to it). */
  redisTlsCaPem?: string | undefined;
  /** Prefix of every Redis key. */
  redisPrefix: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Reads a secret or certificate file named by `name`; a missing, unreadable or empty file is a ConfigError naming it. */
export function readConfigFile(name: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}=${path} cannot be read: ${(err as Error).message}`);
  }
  if (text.trim() === '') throw new ConfigError(`${name}=${path} is empty`);
  return text;
}

/** A password file holds the password, without a trailing newline (trimmed). */
function readPasswordFile(name: string, path: string): string {
  return readConfigFile(name, path).trim();
}

/**
 * Secrets reach every service one way: files in the directory SECRETS_DIR, one file per secret (a Kubernetes
 * secret volume, compose's secrets volume). Unset, it is `.stack/secrets`, where the local stack writes its dev
 * secrets. The file names are fixed (the table in docs/architecture.md, "Secrets"); a `<NAME>_FILE` variable
 * may name another file for one secret, and a relative one is taken inside SECRETS_DIR.
 */
export function secretsDir(env: Env = process.env): string {
  const dir = env.SECRETS_DIR?.trim();
  if (dir !== undefined && dir !== '') return resolve(dir);
  requireLocalDefault(env, 'SECRETS_DIR');
  return resolve('.stack/secrets');
}

/** Where the secret read through `fileVar` is: that variable's path if set, else `SECRETS_DIR/<fileName>`. */
export function secretPath(env: Env, fileVar: string, fileName: string): string {
  const override = env[fileVar]?.trim();
  if (override === undefined || override === '') return join(secretsDir(env), fileName);
  return isAbsolute(override) ? override : join(secretsDir(env), override);
}

/**
 * Reads one secret (trimmed: a trailing newline is never part of it). A missing, unreadable or empty file is a
 * ConfigError naming the variable and the path.
 */
export function readSecret(env: Env, fileVar: string, fileName: string): string {
  return readPasswordFile(fileVar, secretPath(env, fileVar, fileName));
}

function readCaFile(name: string, path: string): string {
  const pem = readConfigFile(name, path);
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${name}=${path} is not a PEM certificate (no BEGIN CERTIFICATE line)`);
  }
  return pem;
}

export function loadKafkaSecurity(env: Env = process.env): KafkaSecurity {
  const r = envReader(env);
  const ssl = r.bool('KAFKA_SSL', false);
  const caFile = r.optionalString('KAFKA_SSL_CA_FILE');
  if (caFile !== undefined && !ssl) throw new ConfigError('KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true');
  const mechanism = r.oneOf('KAFKA_SASL_MECHANISM', ['none', 'scram-sha-512', 'aws-msk-iam'] as const, 'none');
  const username = r.optionalString('KAFKA_SASL_USERNAME');
  const passwordFile = r.optionalString('KAFKA_SASL_PASSWORD_FILE');
  let sasl: KafkaSasl | undefined;
  if (mechanism === 'scram-sha-512') {
    if (username === undefined)
      throw new ConfigError('KAFKA_SASL_USERNAME is required with KAFKA_SASL_MECHANISM=scram-sha-512');
    sasl = { mechanism, username, password: readSecret(env, 'KAFKA_SASL_PASSWORD_FILE', 'kafka-sasl.password') };
  } else {
    // A credential next to a mechanism that ignores it is a deployment mistake, not something to ignore.
    if (username !== undefined)
      throw new ConfigError(`KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is ${mechanism}`);
    if (passwordFile !== undefined) {
      throw new ConfigError(`KAFKA_SASL_PASSWORD_FILE is set but KAFKA_SASL_MECHANISM is ${mechanism}`);
    }
    if (mechanism === 'aws-msk-iam') {
      // EKS sets AWS_REGION in every pod with an IRSA service account.
      const region = r.optionalString('AWS_REGION');
      if (region === undefined) throw new ConfigError('AWS_REGION is required with KAFKA_SASL_MECHANISM=aws-msk-iam');
      if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
        throw new ConfigError(`AWS_REGION must be an AWS region like us-east-1, got ${JSON.stringify(region)}`);
      }
      sasl = { mechanism, region };
    }
  }
  if (sasl !== undefined && !ssl) {
    throw new ConfigError(
      `KAFKA_SASL_MECHANISM=${mechanism} requires KAFKA_SSL=true (credentials never cross the network in clear)`,
    );
  }
  return {
    ssl,
    ...(caFile !== undefined ? { caPem: readCaFile('KAFKA_SSL_CA_FILE', caFile) } : {}),
    ...(sasl !== undefined ? { sasl } : {}),
  };
}

export function loadCqlSecurity(env: Env = process.env): CqlSecurity {
  const r = envReader(env);
  const tls = r.bool('CQL_TLS', false);
  const caFile = r.optionalString('CQL_TLS_CA_FILE');
  if (caFile !== undefined && !tls) throw new ConfigError('CQL_TLS_CA_FILE is set but CQL_TLS is not true');
  const username = r.optionalString('CQL_USERNAME');
  const passwordFile = r.optionalString('CQL_PASSWORD_FILE');
  if (username === undefined && passwordFile !== undefined) {
    throw new ConfigError('CQL_PASSWORD_FILE is set but CQL_USERNAME is not');
  }
  if (username !== undefined && !tls) {
    throw new ConfigError('CQL_USERNAME requires CQL_TLS=true (PasswordAuthenticator sends the password in clear)');
  }
  return {
    tls,
    ...(caFile !== undefined ? { caPem: readCaFile('CQL_TLS_CA_FILE', caFile) } : {}),
    ...(username !== undefined
      ? { auth: { username, password: readSecret(env, 'CQL_PASSWORD_FILE', 'cql.password') } }
      : {}),
  };
}

export function loadCommonConfig(serviceName: string, env: Env = process.env): CommonConfig {
  const r = envReader(env);
  const redisUrl = r.stackString('REDIS_URL', 'redis://127.0.0.1:6379');
  let parsed: URL;
  try {
    parsed = new URL(redisUrl);
  } catch {
    throw new ConfigError(`REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(
      `REDIS_URL must be a redis:// or rediss:// URL, got protocol ${JSON.stringify(parsed.protocol)}`,
    );
  }
  if (parsed.hostname === '') throw new ConfigError('REDIS_URL has no host');
  const redisCluster = r.bool('REDIS_CLUSTER', false);
  if (redisCluster && parsed.pathname !== '' && parsed.pathname !== '/' && parsed.pathname !== '/0') {
    throw new ConfigError(
      `REDIS_URL selects database ${parsed.pathname.slice(1)}, which REDIS_CLUSTER=true cannot use (cluster mode has only database 0)`,
    );
  }
  const redisPasswordFile = r.optionalString('REDIS_PASSWORD_FILE');
  if (redisPasswordFile !== undefined && parsed.password !== '') {
    throw new ConfigError('REDIS_PASSWORD_FILE is set but REDIS_URL has a password too: use one');
  }
  const redisCaFile = r.optionalString('REDIS_TLS_CA_FILE');
  if (redisCaFile !== undefined && parsed.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss://');
  }
  const redisPrefix = r.string('REDIS_PREFIX', 'vs:');
  // Keys carry hash tags `{...}` so a script's keys share one cluster slot; braces in the prefix would move the tag.
  if (/[{}]/.test(redisPrefix))
    throw new ConfigError(`REDIS_PREFIX must not contain { or }, got ${JSON.stringify(redisPrefix)}`);
  return {
    serviceName,
    kafkaBrokers: r.stackList('KAFKA_BROKERS', ['127.0.0.1:9092']),
    kafkaSecurity: loadKafkaSecurity(env),
    schemaRegistryUrl: r.stackString('SCHEMA_REGISTRY_URL', 'http://127.0.0.1:8081/apis/ccompat/v7'),
    topicPrefix: r.string('TOPIC_PREFIX', 'votestream.'),
    cqlContactPoints: r.stackList('CQL_CONTACT_POINTS', ['127.0.0.1:9042']),
    cqlLocalDataCenter: r.stackString('CQL_LOCAL_DC', 'datacenter1'),
    cqlKeyspace: r.string('CQL_KEYSPACE', 'votestream'),
    cqlSecurity: loadCqlSecurity(env),
    redisUrl,
    redisCluster,
    ...(redisPasswordFile !== undefined
      ? { redisPassword: readSecret(env, 'REDIS_PASSWORD_FILE', 'redis-auth.token') }
      : {}),
    ...(redisCaFile !== undefined ? { redisTlsCaPem: readCaFile('REDIS_TLS_CA_FILE', redisCaFile) } : {}),
    redisPrefix,
    logLevel: r.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  };
}
