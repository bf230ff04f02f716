import { readFileSync } from 'node:fs';
import { type CommonConfig, ConfigError, envReader, loadCommonConfig } from '@votestream/runtime';

export interface ProjectionsConfig extends CommonConfig {
  httpPort: number;
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
}

export function loadProjectionsConfig(env: Record<string, string | undefined> = process.env): ProjectionsConfig {
  const r = envReader(env);
  const common = loadCommonConfig('projections', env);
  const passwordFile = r.string('MQTT_PASSWORD_FILE', '.stack/secrets/mqtt-projections.password');
  let mqttPassword = r.optionalString('MQTT_PASSWORD');
  if (mqttPassword === undefined) {
    try {
      mqttPassword = readFileSync(passwordFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`MQTT_PASSWORD_FILE ${passwordFile} cannot be read: ${(err as Error).message}`);
    }
  }
  return {
    ...common,
    httpPort: r.int('HTTP_PORT', 8090, { min: 0, max: 65535 }),
    groupId: r.string('PROJECTIONS_GROUP_ID', `${common.topicPrefix}projections`),
    mqttUrl: r.string('MQTT_URL', 'mqtt://127.0.0.1:1883'),
    mqttUsername: r.string('MQTT_USERNAME', 'projections'),
    mqttPassword,
    liveMqttWsUrl: r.string('LIVE_MQTT_WS_URL', 'ws://127.0.0.1:9001'),
    liveApiUrl: r.optionalString('LIVE_API_URL') ?? 'http://127.0.0.1:8080',
    liveMessagesPerPollPerSecondMax: r.int('LIVE_MESSAGES_PER_POLL_PER_SECOND_MAX', 10, { min: 1, max: 1000 }),
    livePollsMax: r.int('LIVE_POLLS_MAX', 10_000, { min: 1 }),
    seriesWindowsMax: r.int('SERIES_WINDOWS_MAX', 120, { min: 1, max: 10_000 }),
    mqttReconnectDelayMsMin: r.int('MQTT_RECONNECT_DELAY_MS_MIN', 250, { min: 10 }),
    mqttReconnectDelayMsMax: r.int('MQTT_RECONNECT_DELAY_MS_MAX', 10_000, { min: 10 }),
    fetchBytesPerPartitionMax: r.int('FETCH_BYTES_PER_PARTITION_MAX', 1024 * 1024, { min: 1024 }),
    ...consumerTimeouts(r),
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
