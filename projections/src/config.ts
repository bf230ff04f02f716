import {
  type CommonConfig,
  ConfigError,
  envReader,
  type HttpServerLimits,
  loadCommonConfig,
  loadHttpServerLimits,
  readSecret,
} from '@votestream/runtime';

export interface ProjectionsConfig extends CommonConfig {
  httpPort: number;
  /** Prometheus `/metrics` port (never the public HTTP port). */
  metricsPort: number;
  /** Timeouts and connection cap of the public HTTP server. */
  http: HttpServerLimits;
  /** CSP `frame-ancestors` of the live page: who may frame it ('none' by default; a studio tool's origin if it must). */
  liveFrameAncestors: string;
  /** Consumer group id prefix; the tallies and receipts projectors add `-tallies` / `-receipts`. */
  groupId: string;
  mqttUrl: string;
  mqttUsername: string;
  mqttPassword: string;
  /** What the live page's browser connects to (MQTT over WebSockets). */
  liveMqttWsUrl: string;
  /** Base URL of the vote API for the live page ('' = same origin, as behind the ALB in production). */
  liveApiUrl: string;
  /** Coalescing: at most this many messages per poll per topic per second; always the latest state. */
  liveMessagesPerPollPerSecondMax: number;
  /** Polls the live publisher tracks at once; the least recently updated is forgotten beyond it. */
  livePollsMax: number;
  /** Windows kept in each poll's series message. */
  seriesWindowsMax: number;
  mqttReconnectDelayMsMin: number;
  mqttReconnectDelayMsMax: number;
  /** Upper bound on bytes fetched per partition per Kafka fetch (bounds a batch in memory). */
  fetchBytesPerPartitionMax: number;
  /**
   * A consumer that sends no heartbeat for this long is declared dead and its partitions move to another
   * instance: the failure-detection part of the failover time (>= the broker's group.min.session.timeout.ms, 6 s).
   */
  sessionTimeoutMs: number;
  /** Heartbeat period of the consumers (at most a third of the session timeout). */
  heartbeatIntervalMs: number;
  /** Longest a rebalance waits for every member to rejoin; a member that has not rejoined by then is dropped. */
  rebalanceTimeoutMs: number;
  /**
   * A partition the group has never committed an offset for is read from its beginning (auto.offset.reset =
   * earliest), not from its end: an instance that receives it in a rebalance after another instance died before
   * its first commit must not skip the decisions and tallies written meanwhile (found by the chaos run: receipts
   * missing). Both projections are idempotent, so a re-read costs time, never correctness.
   */
  fromBeginning: boolean;
  /** Prefix of the schema registry subjects ('' in deployments; tests isolate themselves with it). */
  schemaSubjectPrefix: string;
}

/** `'none'`, `'self'` or space-separated https origins: nothing that could break out of the CSP header. */
function frameAncestors(value: string): string {
  const ok = value
    .split(' ')
    .filter((s) => s !== '')
    .every((s) => s === "'none'" || s === "'self'" || /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(s));
  if (!ok) throw new ConfigError(`LIVE_FRAME_ANCESTORS must be 'none', 'self' or https origins, got ${value}`);
  return value;
}

export function loadProjectionsConfig(env: Record<string, string | undefined> = process.env): ProjectionsConfig {
  const r = envReader(env);
  const common = loadCommonConfig('projections', env);
  // MQTT_PASSWORD (plain) is for tests; deployments give the file SECRETS_DIR/mqtt-projections.password.
  const mqttPassword =
    r.optionalString('MQTT_PASSWORD') ?? readSecret(env, 'MQTT_PASSWORD_FILE', 'mqtt-projections.password');
  return {
    ...common,
    httpPort: r.int('HTTP_PORT', 8090, { min: 0, max: 65535 }),
    metricsPort: r.int('PROJECTIONS_METRICS_PORT', 9472, { min: 0, max: 65535 }),
    http: loadHttpServerLimits(r, { connectionsMax: 5000 }),
    liveFrameAncestors: frameAncestors(r.string('LIVE_FRAME_ANCESTORS', "'none'")),
    groupId: r.string('PROJECTIONS_GROUP_ID', `${common.topicPrefix}projections`),
    mqttUrl: r.stackString('MQTT_URL', 'mqtt://127.0.0.1:1883'),
    mqttUsername: r.string('MQTT_USERNAME', 'projections'),
    mqttPassword,
    liveMqttWsUrl: r.stackString('LIVE_MQTT_WS_URL', 'ws://127.0.0.1:9001'),
    liveApiUrl: r.stackString('LIVE_API_URL', 'http://127.0.0.1:8080'),
    liveMessagesPerPollPerSecondMax: r.int('LIVE_MESSAGES_PER_POLL_PER_SECOND_MAX', 10, { min: 1, max: 1000 }),
    livePollsMax: r.int('LIVE_POLLS_MAX', 10_000, { min: 1 }),
    seriesWindowsMax: r.int('SERIES_WINDOWS_MAX', 120, { min: 1, max: 10_000 }),
    mqttReconnectDelayMsMin: r.int('MQTT_RECONNECT_DELAY_MS_MIN', 250, { min: 10 }),
    mqttReconnectDelayMsMax: r.int('MQTT_RECONNECT_DELAY_MS_MAX', 10_000, { min: 10 }),
    fetchBytesPerPartitionMax: r.int('FETCH_BYTES_PER_PARTITION_MAX', 1024 * 1024, { min: 1024 }),
    ...consumerTimeouts(r),
    fromBeginning: r.bool('PROJECTIONS_FROM_BEGINNING', true),
    schemaSubjectPrefix: r.string('SCHEMA_SUBJECT_PREFIX', ''),
  };
}

function consumerTimeouts(r: ReturnType<typeof envReader>) {
  const sessionTimeoutMs = r.int('PROJECTIONS_SESSION_TIMEOUT_MS', 6000, { min: 6000, max: 300_000 });
  const heartbeatIntervalMs = r.int('PROJECTIONS_HEARTBEAT_INTERVAL_MS', 1000, { min: 100, max: 60_000 });
  if (heartbeatIntervalMs * 3 > sessionTimeoutMs)
    throw new ConfigError(
      'PROJECTIONS_HEARTBEAT_INTERVAL_MS must be at most a third of PROJECTIONS_SESSION_TIMEOUT_MS',
    );
  const rebalanceTimeoutMs = r.int('PROJECTIONS_REBALANCE_TIMEOUT_MS', 30_000, { min: sessionTimeoutMs, max: 300_000 });
  return { sessionTimeoutMs, heartbeatIntervalMs, rebalanceTimeoutMs };
}
