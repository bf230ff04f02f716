/**
 * Configuration from environment variables, validated once at start-up.
 * A bad value fails fast with an error that names the variable, never later on the hot path.
 */

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
    oneOf(name, choices, fallback) {
      const v = raw(name) ?? fallback;
      if (!(choices as readonly string[]).includes(v)) {
        throw new ConfigError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
      }
      return v as (typeof choices)[number];
    },
  };
}

/** Settings every service shares: where the local stack (or production) services are. Defaults fit compose/. */
export interface CommonConfig {
  serviceName: string;
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  /** Prefix of every Kafka topic name, so tests and tenants can run side by side on one cluster. */
  topicPrefix: string;
  cqlContactPoints: string[];
  cqlLocalDataCenter: string;
  cqlKeyspace: string;
  redisUrl: string;
  /** Prefix of every Redis key. */
  redisPrefix: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export function loadCommonConfig(serviceName: string, env: Env = process.env): CommonConfig {
  const r = envReader(env);
  return {
    serviceName,
    kafkaBrokers: r.list('KAFKA_BROKERS', ['127.0.0.1:9092']),
    schemaRegistryUrl: r.string('SCHEMA_REGISTRY_URL', 'http://127.0.0.1:8081/apis/ccompat/v7'),
    topicPrefix: r.string('TOPIC_PREFIX', 'votestream.'),
    cqlContactPoints: r.list('CQL_CONTACT_POINTS', ['127.0.0.1:9042']),
    cqlLocalDataCenter: r.string('CQL_LOCAL_DC', 'datacenter1'),
    cqlKeyspace: r.string('CQL_KEYSPACE', 'votestream'),
    redisUrl: r.string('REDIS_URL', 'redis://127.0.0.1:6379'),
    redisPrefix: r.string('REDIS_PREFIX', 'vs:'),
    logLevel: r.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  };
}
