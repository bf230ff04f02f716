// The stream processors: `node --import tsx stream/src/main.ts`. STREAM_STAGES selects the stages this
// process runs (default all: dedupe, tally, sink); metrics on STREAM_METRICS_PORT (default 9470).
import { createServer } from 'node:http';
import {
  brokerLossRetry,
  createCqlClient,
  createKafka,
  createLogger,
  createMetricsRegistry,
  onShutdown,
} from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';
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
  await ensureChangelog(admin, topics.dedupeChangelog, votesPartitions, replicationFactor, logger);
  await ensureChangelog(admin, topics.partialTallyChangelog, votesPartitions, replicationFactor, logger);
  const catalog = new PollCatalog(
    kafka,
    admin,
    topics.polls,
    serde,
    logger.child({ component: 'catalog' }),
    config.catalogApplyDelayMs,
  );
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
  closers.push(
    () => thread.stop(),
    () => catalog.stop(),
  );
}

if (config.stages.includes('tally')) {
  const partials = await partitionCount(admin, topics.tallyPartials);
  await ensureChangelog(admin, topics.globalTallyChangelog, partials, replicationFactor, logger);
  const thread = new StreamThread({
    stage: 'tally',
    kafka,
    admin,
    inputTopic: topics.tallyPartials,
    groupId: `${app}-tally`,
    transactionalIdPrefix: `${app}-${topics.tallyPartials}`,
    config,
    logger,
    registry,
    createProcessor: (partition) =>
      new GlobalTallyProcessor(partition, {
        config,
        serde,
        sources: votesPartitions,
        logger,
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
  const sink = new CqlTallySink({
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
    () => cql.shutdown(),
  );
}

const server = createServer((req, res) => {
  if (req.url === '/metrics') {
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  } else if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', stages: config.stages }));
  } else {
    res.writeHead(404);
    res.end();
  }
});
server.listen(config.metricsPort, config.metricsHost);
closers.push(
  () => new Promise<void>((r) => server.close(() => r())),
  () => admin.disconnect(),
);
onShutdown(logger, closers);
logger.info({ stages: config.stages, metricsPort: config.metricsPort, prefix: config.topicPrefix }, 'stream started');
