// The stream processors: `node --import tsx stream/src/main.ts`. STREAM_STAGES selects the stages this
// process runs (default all: dedupe, tally, sink); metrics on STREAM_METRICS_PORT (default 9470).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import {
  brokerLossRetry,
  createCqlClient,
  createKafka,
  createLogger,
  createMetricsRegistry,
  onShutdown,
  requireTopics,
  startMetricsServer,
} from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
import { Partitioners } from 'kafkajs';
import { PollSalts } from './analytics/poll-salts.ts';
import { PollCatalog } from './catalog.ts';
import { loadStreamConfig } from './config.ts';
import { DedupeProcessor } from './processors/dedupe.ts';
import { GlobalTallyProcessor } from './processors/global-tally.ts';
import { StreamThread } from './runtime/stream-thread.ts';
import { CqlTallySink } from './sink/cql-tally-sink.ts';
import { ensureChangelog, partitionCount, streamTopics } from './topology.ts';

const config = loadStreamConfig();
const logger = createLogger('stream', config.logLevel);
const registry = createMetricsRegistry('stream');
const kafka = createKafka({
  clientId: config.applicationId,
  brokers: config.kafkaBrokers,
  security: config.kafkaSecurity,
  logger,
  retry: brokerLossRetry,
});
const admin = kafka.admin();
await admin.connect();
const topics = streamTopics(config.topicPrefix, config.applicationId);
const replicationFactor = config.changelogReplicationFactor;
const serde = await createAvroSerde({
  registryUrl: config.schemaRegistryUrl,
  subjectPrefix: config.schemaSubjectPrefix,
});
const closers: Array<() => Promise<void>> = [];
const app = config.applicationId;
const votesPartitions = await partitionCount(admin, topics.votes);

if (config.stages.includes('dedupe')) {
  await requireTopics(admin, [
    topics.votes,
    topics.polls,
    topics.voteDecisions,
    topics.tallyPartials,
    topics.analyticsVotes,
  ]);
  const saltsCql = createCqlClient({
    contactPoints: config.cqlContactPoints,
    localDataCenter: config.cqlLocalDataCenter,
    security: config.cqlSecurity,
  });
  const salts = new PollSalts(saltsCql, config.cqlKeyspace, config.analyticsSaltTtlS);
  await ensureChangelog(admin, topics.dedupeChangelog, votesPartitions, replicationFactor, logger);
  await ensureChangelog(admin, topics.partialTallyChangelog, votesPartitions, replicationFactor, logger);
  const catalog = new PollCatalog(kafka, admin, topics.polls, serde, logger.child({ component: 'catalog' }));
  await catalog.start();
  const thread = new StreamThread({
    stage: 'dedupe',
    kafka,
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
        salts,
        topics: {
          analyticsVotes: topics.analyticsVotes,
          votes: topics.votes,
          voteDecisions: topics.voteDecisions,
          tallyPartials: topics.tallyPartials,
          tallyChangelog: topics.partialTallyChangelog,
          dedupeChangelog: topics.dedupeChangelog,
        },
      }),
  });
  await thread.start();
  closers.push(
    () => thread.stop(),
    () => catalog.stop(),
    () => saltsCql.shutdown(),
  );
}

if (config.stages.includes('tally')) {
  // The audit checkpoint of final tallies is signed with this key (docs/trust.md); without it, unsigned.
  let signer: { key: KeyObject; keyId: string } | undefined;
  if (config.auditSigningKeyPem) {
    const key = createPrivateKey(config.auditSigningKeyPem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('AUDIT_SIGNING_KEY_FILE must hold an Ed25519 private key');
    signer = { key, keyId: config.auditKeyId };
  } else logger.warn('AUDIT_SIGNING_KEY_FILE is not set: final tallies carry unsigned audit checkpoints');
  const partials = await partitionCount(admin, topics.tallyPartials);
  await ensureChangelog(admin, topics.globalTallyChangelog, partials, replicationFactor, logger);
  const thread = new StreamThread({
    stage: 'tally',
    kafka,
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
  closers.push(() => thread.stop());
}

if (config.stages.includes('sink')) {
  const cql = createCqlClient({
    contactPoints: config.cqlContactPoints,
    localDataCenter: config.cqlLocalDataCenter,
    security: config.cqlSecurity,
  });
  // Only for dead letters (rare): idempotent, acks = all per send.
  const deadLetterProducer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner, // explicit: KafkaJS warns when it is left out
  });
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
  });
  await sink.start();
  closers.push(
    () => sink.stop(),
    () => deadLetterProducer.disconnect(),
    () => cql.shutdown(),
  );
}

// Liveness and readiness alike: this server listens only once the topology has started, and the answer depends
// on no broker (a Kafka outage must not get every stream pod restarted).
const alive = () => [200, { status: 'ok', stages: config.stages }] as const;
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
onShutdown(logger, closers);
logger.info({ stages: config.stages, metricsPort: config.metricsPort, prefix: config.topicPrefix }, 'stream started');
