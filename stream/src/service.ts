// The stream service: the stages of the topology this process runs (STREAM_STAGES), and its metrics/health server.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import {
  brokerLossRetry,
  createCqlClient,
  createDeadLetterProducer,
  createKafka,
  createMetricsRegistry,
  type Logger,
  loadTransactionalProducers,
  requireTopics,
  startMetricsServer,
} from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import { PollSalts } from './analytics/poll-salts.ts';
import { PollCatalog } from './catalog.ts';
import type { StreamConfig } from './config.ts';
import { AnalyticsProcessor, analyticsFetchMinBytes } from './processors/analytics.ts';
import { DedupeProcessor } from './processors/dedupe.ts';
import { GlobalTallyProcessor } from './processors/global-tally.ts';
import type { FatalHandler } from './runtime/errors.ts';
import { fastDefaultPartitioner } from './runtime/partitioner.ts';
import { partitionCount } from './runtime/partitions.ts';
import { StreamThread } from './runtime/stream-thread.ts';
import type { TaskReport } from './runtime/task-manager.ts';
import { CqlTallySink } from './sink/cql-tally-sink.ts';
import { ensureChangelog, streamTopics } from './topology.ts';

export interface Stream {
  /** The port of `/metrics`, `/health`, `/healthz` and `/readyz` (STREAM_METRICS_PORT; 0 picks a free one). */
  metricsPort: number;
  /** The tasks of every stage this process runs and their states (what `/readyz` reports). */
  taskStates(): TaskReport[];
  /** Stops the stages (their tasks close), then the server and the admin client, in that order. */
  closers: Array<() => Promise<void>>;
}

/**
 * Starts the stages in `config.stages` and the metrics/health server. Errors the runtime cannot recover from
 * (a broken invariant, a task failing taskFailuresMax times in a row, a consumer that will not restart) go to
 * `onFatal`: main.ts logs them and exits, so the supervisor restarts the process; nothing in here exits.
 */
export async function startStream(
  config: StreamConfig,
  { logger, onFatal }: { logger: Logger; onFatal: FatalHandler },
): Promise<Stream> {
  const registry = createMetricsRegistry('stream');
  const closers: Array<() => Promise<void>> = [];
  const threads: StreamThread[] = [];
  const kafka = createKafka({
    clientId: config.applicationId,
    brokers: config.kafkaBrokers,
    security: config.kafkaSecurity,
    logger,
    retry: brokerLossRetry,
  });
  // The tasks' transactional producers (the seam): KafkaJS unless STREAM_KAFKA_CLIENT selects the prototype.
  const producers = await loadTransactionalProducers(
    config.kafkaClient,
    kafka,
    { clientId: config.applicationId, brokers: config.kafkaBrokers, security: config.kafkaSecurity },
    fastDefaultPartitioner,
  );
  const admin = kafka.admin();
  await admin.connect();
  const topics = streamTopics(config.topicPrefix, config.applicationId);
  const replicationFactor = config.changelogReplicationFactor;
  const serde = await createAvroSerde({
    registryUrl: config.schemaRegistryUrl,
    subjectPrefix: config.schemaSubjectPrefix,
  });
  const app = config.applicationId;
  const votesPartitions = await partitionCount(admin, topics.votes);

  if (config.stages.includes('dedupe')) {
    await requireTopics(admin, [topics.votes, topics.polls, topics.voteDecisions, topics.tallyPartials]);
    await ensureChangelog(admin, topics.dedupeChangelog, votesPartitions, replicationFactor, logger);
    await ensureChangelog(admin, topics.partialTallyChangelog, votesPartitions, replicationFactor, logger);
    const catalog = new PollCatalog(kafka, admin, topics.polls, serde, logger.child({ component: 'catalog' }));
    await catalog.start();
    const thread = new StreamThread({
      stage: 'dedupe',
      onFatal,
      kafka,
      producers,
      admin,
      inputTopic: topics.votes,
      groupId: `${app}-dedupe`,
      transactionalIdPrefix: `${app}-${topics.votes}`,
      config,
      logger,
      registry,
      // Read barrier: a batch of votes is decided only once the catalog applied every poll event appended before
      // it (a CLOSED event in particular).
      deadLetterTopic: topics.deadLetters,
      readBarrier: {
        topic: topics.polls,
        timeoutMs: config.catalogBarrierTimeoutMs,
        waitFor: (highs, timeoutMs) => catalog.waitFor(highs, timeoutMs),
      },
      createProcessor: (partition) =>
        new DedupeProcessor(partition, {
          config,
          serde,
          catalog,
          logger,
          registry,
          topics: {
            votes: topics.votes,
            voteDecisions: topics.voteDecisions,
            tallyPartials: topics.tallyPartials,
            tallyChangelog: topics.partialTallyChangelog,
            dedupeChangelog: topics.dedupeChangelog,
          },
        }),
    });
    await thread.start();
    threads.push(thread);
    closers.push(
      () => thread.stop(),
      () => catalog.stop(),
    );
  }

  if (config.stages.includes('analytics')) {
    // Off stage 1's transaction: the decisions, each as one pseudonymous record (docs/trust.md), exactly once.
    await requireTopics(admin, [topics.voteDecisions, topics.analyticsVotes]);
    const saltsCql = createCqlClient({
      contactPoints: config.cqlContactPoints,
      localDataCenter: config.cqlLocalDataCenter,
      security: config.cqlSecurity,
    });
    const salts = new PollSalts(saltsCql, config.cqlKeyspace, config.analyticsSaltTtlS);
    const decisionsPartitions = await partitionCount(admin, topics.voteDecisions);
    await ensureChangelog(admin, topics.analyticsPositionChangelog, decisionsPartitions, replicationFactor, logger);
    const thread = new StreamThread({
      stage: 'analytics',
      onFatal,
      kafka,
      producers,
      admin,
      inputTopic: topics.voteDecisions,
      groupId: `${app}-analytics`,
      transactionalIdPrefix: `${app}-${topics.voteDecisions}`,
      deadLetterTopic: topics.deadLetters,
      // Off the vote-to-screen path: fewer, larger transactions (each costs ~20 Kafka requests whatever its size).
      fetch: { maxWaitMs: config.analyticsFetchMaxWaitMs, minBytes: analyticsFetchMinBytes },
      config,
      logger,
      registry,
      createProcessor: (partition) =>
        new AnalyticsProcessor(partition, {
          serde,
          salts,
          topics: {
            voteDecisions: topics.voteDecisions,
            analyticsVotes: topics.analyticsVotes,
            positionChangelog: topics.analyticsPositionChangelog,
          },
        }),
    });
    await thread.start();
    threads.push(thread);
    closers.push(
      () => thread.stop(),
      () => saltsCql.shutdown(),
    );
  }

  if (config.stages.includes('tally')) {
    // The audit checkpoint of final tallies is signed with this key (docs/trust.md); without it, unsigned.
    let signer: { key: KeyObject; keyId: string } | undefined;
    if (config.auditSigningKeyPem) {
      const key = createPrivateKey(config.auditSigningKeyPem);
      if (key.asymmetricKeyType !== 'ed25519')
        throw new Error('AUDIT_SIGNING_KEY_FILE must hold an Ed25519 private key');
      signer = { key, keyId: config.auditKeyId };
    } else logger.warn('AUDIT_SIGNING_KEY_FILE is not set: final tallies carry unsigned audit checkpoints');
    const partials = await partitionCount(admin, topics.tallyPartials);
    await ensureChangelog(admin, topics.globalTallyChangelog, partials, replicationFactor, logger);
    const thread = new StreamThread({
      stage: 'tally',
      onFatal,
      kafka,
      producers,
      admin,
      inputTopic: topics.tallyPartials,
      groupId: `${app}-tally`,
      transactionalIdPrefix: `${app}-${topics.tallyPartials}`,
      deadLetterTopic: topics.deadLetters,
      config,
      logger,
      registry,
      createProcessor: (partition) =>
        new GlobalTallyProcessor(partition, {
          config,
          serde,
          sources: votesPartitions,
          logger,
          ...(signer ? { signer } : {}),
          topics: {
            tallyPartials: topics.tallyPartials,
            tallies: topics.tallies,
            changelog: topics.globalTallyChangelog,
          },
        }),
    });
    await thread.start();
    threads.push(thread);
    closers.push(() => thread.stop());
  }

  if (config.stages.includes('sink')) {
    const cql = createCqlClient({
      contactPoints: config.cqlContactPoints,
      localDataCenter: config.cqlLocalDataCenter,
      security: config.cqlSecurity,
    });
    const deadLetterProducer = createDeadLetterProducer(kafka);
    await deadLetterProducer.connect();
    const sink = new CqlTallySink({
      deadLetters: { producer: deadLetterProducer, topic: topics.deadLetters },
      kafka,
      cql,
      keyspace: config.cqlKeyspace,
      talliesTopic: topics.tallies,
      groupId: `${app}-cql-sink`,
      serde,
      logger: logger.child({ component: 'cql-sink' }),
      registry,
      onFatal,
    });
    await sink.start();
    closers.push(
      () => sink.stop(),
      () => deadLetterProducer.disconnect(),
      () => cql.shutdown(),
    );
  }

  const taskStates = (): TaskReport[] => threads.flatMap((t) => t.taskStates());
  // Liveness and readiness alike: this server listens only once the topology has started, and the answer depends
  // on no broker (a Kafka outage must not get every stream pod restarted). The task states are information
  // (tests and operators wait on them), not a condition of the status.
  const alive = () => [200, { status: 'ok', stages: config.stages, tasks: taskStates() }] as const;
  const metricsServer = await startMetricsServer({
    registry,
    port: config.metricsPort,
    host: config.metricsHost,
    probes: { '/health': alive, '/healthz': alive, '/readyz': alive },
  });
  closers.push(
    () => metricsServer.close(),
    () => admin.disconnect(),
  );
  return { metricsPort: metricsServer.port, taskStates, closers };
}
