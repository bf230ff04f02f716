import { existsSync } from 'node:fs';
import {
  type CommonConfig,
  ConfigError,
  envReader,
  type KafkaClientName,
  kafkaClients,
  loadCommonConfig,
  readConfigFile,
  secretPath,
} from '@votestream/runtime';

export const stageNames = ['dedupe', 'analytics', 'tally', 'sink'] as const;
export type StageName = (typeof stageNames)[number];

/** Stream processor settings, read once at start-up from the environment (defaults fit the local stack). */
export interface StreamConfig extends CommonConfig {
  /** Names the consumer groups, the transactional ids and the changelog topics (like Kafka Streams' application.id). */
  applicationId: string;
  /**
   * Which stages this process runs: dedupe (stage 1), analytics (decisions -> analytics-votes), tally (stage 2,
   * global), sink (tallies -> CQL).
   */
  stages: StageName[];
  metricsPort: number;
  schemaSubjectPrefix: string;
  /** Tumbling event-time window length. */
  windowMs: number;
  /** How long after a window's end (in event time) votes still count as on time; also the delay before a final tally. */
  graceMs: number;
  /** How long (event time) a window's counts stay in the state store after it closed; later votes only count in totals. */
  windowRetentionMs: number;
  /** A caught-up task that has seen no record for this long advances its watermark to wall clock minus this. */
  idleTimeoutMs: number;
  punctuateIntervalMs: number;
  /** Records per transaction at most; a fetched batch larger than this is committed in several transactions. */
  commitRecordsMax: number;
  fetchMaxWaitMs: number;
  /** The analytics stage's fetch wait: it fetches at least `analyticsFetchMinBytes` or waits this long (ms). */
  analyticsFetchMaxWaitMs: number;
  fetchPartitionBytesMax: number;
  /** The broker aborts a transaction left open longer than this (e.g. by a process killed mid-commit). */
  transactionTimeoutMs: number;
  /**
   * A member that sends no heartbeat for this long is declared dead and its tasks move to the other instances:
   * the failure-detection part of the failover time (>= the broker's group.min.session.timeout.ms, 6 s).
   */
  sessionTimeoutMs: number;
  /** Heartbeat period (at most a third of the session timeout); KafkaJS also heartbeats after every commit. */
  heartbeatIntervalMs: number;
  /** Longest a rebalance waits for every member to rejoin; a member that has not rejoined by then is dropped. */
  rebalanceTimeoutMs: number;
  /** Input partitions one process works on at the same time. */
  partitionsConsumedConcurrently: number;
  /** Consecutive failed commits of one task before the process gives up and exits (the supervisor restarts it). */
  taskFailuresMax: number;
  /** Replication factor of the changelog topics the process creates (3 in production, 1 on the local stack). */
  changelogReplicationFactor: number;
  /** Address the metrics/health server binds to (0.0.0.0 so Kubernetes probes and Prometheus reach it). */
  metricsHost: string;
  /**
   * Read barrier of the dedupe stage: longest a batch of votes waits for the poll catalog to reach the `polls`
   * end offsets read after the batch was fetched; past it the batch's transaction fails (never processed without).
   */
  catalogBarrierTimeoutMs: number;
  /** Lifetime of a poll's analytics salt (CQL TTL); longer than the raw topics' retention, see docs/trust.md. */
  analyticsSaltTtlS: number;
  /**
   * Ed25519 private key (PKCS#8 PEM) that signs the audit checkpoint of final tallies (docs/trust.md), and its
   * id. Unset: final tallies carry the chain heads unsigned (and `npm run audit -- verify` reports them unsigned).
   */
  auditSigningKeyPem?: string | undefined;
  auditKeyId: string;
  /** The tasks' transactional producer client (the seam in libs/runtime): kafkajs, or the platformatic prototype. */
  kafkaClient: KafkaClientName;
}

export function loadStreamConfig(env: Record<string, string | undefined> = process.env): StreamConfig {
  const r = envReader(env);
  const stages = r.list('STREAM_STAGES', [...stageNames]);
  for (const s of stages) {
    if (!(stageNames as readonly string[]).includes(s))
      throw new ConfigError(`STREAM_STAGES must list some of ${stageNames.join(', ')}, got ${JSON.stringify(s)}`);
  }
  const windowMs = r.int('STREAM_WINDOW_MS', 1000, { min: 10, max: 3_600_000 });
  // The audit signing key: AUDIT_SIGNING_KEY_FILE, else SECRETS_DIR/audit-signing-private.pem when that file
  // exists; neither: final tallies are unsigned (the key is optional, so a missing SECRETS_DIR is not an error).
  let auditKeyPath = r.optionalString('AUDIT_SIGNING_KEY_FILE');
  if (auditKeyPath === undefined) {
    try {
      const path = secretPath(env, 'AUDIT_SIGNING_KEY_FILE', 'audit-signing-private.pem');
      if (existsSync(path)) auditKeyPath = path;
    } catch {
      auditKeyPath = undefined; // no SECRETS_DIR and no local-stack default: no key
    }
  }
  return {
    ...loadCommonConfig('stream', env),
    applicationId: r.string('STREAM_APPLICATION_ID', 'votestream-stream'),
    stages: stages as StageName[],
    metricsPort: r.int('STREAM_METRICS_PORT', 9470, { min: 0, max: 65535 }),
    schemaSubjectPrefix: r.string('SCHEMA_SUBJECT_PREFIX', ''),
    windowMs,
    graceMs: r.int('STREAM_GRACE_MS', 2000, { min: 0, max: 3_600_000 }),
    windowRetentionMs: r.int('STREAM_WINDOW_RETENTION_MS', 600_000, { min: windowMs, max: 7 * 86_400_000 }),
    idleTimeoutMs: r.int('STREAM_IDLE_TIMEOUT_MS', 3000, { min: 100, max: 600_000 }),
    punctuateIntervalMs: r.int('STREAM_PUNCTUATE_INTERVAL_MS', 500, { min: 50, max: 60_000 }),
    commitRecordsMax: r.int('STREAM_COMMIT_RECORDS_MAX', 5000, { min: 1, max: 100_000 }),
    fetchMaxWaitMs: r.int('STREAM_FETCH_MAX_WAIT_MS', 100, { min: 1, max: 10_000 }),
    analyticsFetchMaxWaitMs: r.int('STREAM_ANALYTICS_FETCH_MAX_WAIT_MS', 1000, { min: 1, max: 10_000 }),
    fetchPartitionBytesMax: r.int('STREAM_FETCH_PARTITION_BYTES_MAX', 1_048_576, { min: 1024, max: 52_428_800 }),
    transactionTimeoutMs: r.int('STREAM_TRANSACTION_TIMEOUT_MS', 60_000, { min: 1000, max: 900_000 }),
    ...consumerTimeouts(r),
    partitionsConsumedConcurrently: r.int('STREAM_PARTITIONS_CONCURRENCY', 8, { min: 1, max: 256 }),
    taskFailuresMax: r.int('STREAM_TASK_FAILURES_MAX', 10, { min: 1, max: 1000 }),
    changelogReplicationFactor: r.int('STREAM_CHANGELOG_REPLICATION', 1, { min: 1, max: 5 }),
    metricsHost: r.string('STREAM_METRICS_HOST', '0.0.0.0'),
    catalogBarrierTimeoutMs: r.int('STREAM_CATALOG_BARRIER_TIMEOUT_MS', 15_000, { min: 100, max: 300_000 }),
    analyticsSaltTtlS: r.int('ANALYTICS_SALT_TTL_S', 4 * 86_400, { min: 3600, max: 90 * 86_400 }),
    ...(auditKeyPath !== undefined
      ? { auditSigningKeyPem: readConfigFile('AUDIT_SIGNING_KEY_FILE', auditKeyPath) }
      : {}),
    auditKeyId: r.string('AUDIT_KEY_ID', 'votestream-audit-1'),
    kafkaClient: r.oneOf('STREAM_KAFKA_CLIENT', kafkaClients, 'kafkajs'),
  };
}

function consumerTimeouts(r: ReturnType<typeof envReader>) {
  const sessionTimeoutMs = r.int('STREAM_SESSION_TIMEOUT_MS', 6000, { min: 6000, max: 300_000 });
  const heartbeatIntervalMs = r.int('STREAM_HEARTBEAT_INTERVAL_MS', 1000, { min: 100, max: 60_000 });
  if (heartbeatIntervalMs * 3 > sessionTimeoutMs)
    throw new ConfigError('STREAM_HEARTBEAT_INTERVAL_MS must be at most a third of STREAM_SESSION_TIMEOUT_MS');
  const rebalanceTimeoutMs = r.int('STREAM_REBALANCE_TIMEOUT_MS', 30_000, { min: sessionTimeoutMs, max: 300_000 });
  return { sessionTimeoutMs, heartbeatIntervalMs, rebalanceTimeoutMs };
}
