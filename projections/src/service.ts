import { createReadModels, createReadModelWriter, scanLatest } from '@votestream/read-models';
import {
  AtLeastOnceLoop,
  batchRetryDelayMs,
  brokerLossRetry,
  createCqlClient,
  createDeadLetterProducer,
  createKafka,
  createLogger,
  createMetricsRegistry,
  createRedis,
  deadLetterCounter,
  exportConsumerLag,
  type Logger,
  requireTopics,
  startMetricsServer,
  topicNames,
} from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate, type VoteDecision } from '@votestream/schemas';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { ProjectionsConfig } from './config.ts';
import { createHttpServer } from './http/server.ts';
import { connectLiveMqtt } from './live/mqtt.ts';
import { LivePublisher } from './live/publisher.ts';
import { ReceiptProjector } from './projector/receipts.ts';
import { TallyProjector } from './projector/tallies.ts';

export interface Projections {
  httpPort: number;
  /** PROJECTIONS_METRICS_PORT, where Prometheus scrapes `/metrics`. */
  metricsPort: number;
  publisher: LivePublisher;
  close(): Promise<void>;
}

/**
 * Starts the projections service: the tallies projector (Redis results + live MQTT), the receipts projector
 * (CQL ledger), and the HTTP server. Before consuming, it republishes the latest results of every poll in
 * Redis, so after a restart the live topics carry the newest state again.
 */
export async function startProjections(
  config: ProjectionsConfig,
  opts: {
    fromBeginning?: boolean;
    logger?: Logger;
    subjectPrefix?: string;
    /**
     * A projector consumer stopped for good (KafkaJS does not restart a consumer after a non-retriable error,
     * e.g. UNKNOWN_MEMBER_ID on an offset commit while a broker restarts): nothing would be projected again,
     * so main.ts ends the process and the supervisor restarts it (both projections are idempotent replays).
     */
    onFatal?: (err: unknown) => void;
  } = {},
): Promise<Projections> {
  const logger = opts.logger ?? createLogger('projections', config.logLevel);
  const registry = createMetricsRegistry('projections');
  const topics = topicNames(config.topicPrefix);
  const metrics = {
    records: new Counter({
      name: 'projections_records_total',
      help: 'Records projected, by input topic',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    failures: new Counter({
      name: 'projections_batch_failures_total',
      help: 'Failed attempts of a batch (Redis, CQL or the schema registry unreachable), by input topic; each is retried',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    staleResults: new Counter({
      name: 'projections_results_stale_total',
      help: 'Tallies not newer than the results already in Redis (replays, restarts)',
      registers: [registry],
    }),
    writeSeconds: new Histogram({
      name: 'projections_write_seconds',
      help: 'Duration of one batch write, by read model',
      labelNames: ['model'] as const,
      buckets: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3],
      registers: [registry],
    }),
    messages: new Counter({
      name: 'projections_live_messages_total',
      help: 'MQTT messages acknowledged by the broker',
      labelNames: ['topic_kind'] as const,
      registers: [registry],
    }),
    coalesced: new Counter({
      name: 'projections_live_coalesced_total',
      help: 'Poll states replaced by a newer one before they were published',
      registers: [registry],
    }),
    publishErrors: new Counter({
      name: 'projections_live_publish_errors_total',
      help: 'MQTT publishes that failed (republished later)',
      registers: [registry],
    }),
    connected: new Gauge({
      name: 'projections_mqtt_connected',
      help: '1 while connected to the MQTT broker',
      registers: [registry],
    }),
    publishDelay: new Histogram({
      name: 'projections_live_publish_delay_seconds',
      help: "From a tally's asOf to the broker's PUBACK of its live message",
      buckets: [0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 5],
      registers: [registry],
    }),
  };

  const redis = createRedis(config, {
    maxRetriesPerRequest: 3,
    enableOfflineQueue: true,
    connectTimeout: 5_000,
  });
  redis.on('error', (err) => logger.warn({ err }, 'Redis error'));
  const cql = createCqlClient({
    contactPoints: config.cqlContactPoints,
    localDataCenter: config.cqlLocalDataCenter,
    security: config.cqlSecurity,
  });
  await cql.connect();
  const serde = await createAvroSerde({
    registryUrl: config.schemaRegistryUrl,
    records: ['TallyUpdate', 'VoteDecision'],
    ...(opts.subjectPrefix !== undefined ? { subjectPrefix: opts.subjectPrefix } : {}),
  });
  const writer = createReadModelWriter({ redis, cql, keyspace: config.cqlKeyspace, redisPrefix: config.redisPrefix });
  const readModels = createReadModels({
    redis,
    cql,
    keyspace: config.cqlKeyspace,
    redisPrefix: config.redisPrefix,
    logger,
  });

  const mqttClient = connectLiveMqtt({
    url: config.mqttUrl,
    username: config.mqttUsername,
    password: config.mqttPassword,
    logger,
    reconnectDelayMsMin: config.mqttReconnectDelayMsMin,
    reconnectDelayMsMax: config.mqttReconnectDelayMsMax,
  });
  const publisher = new LivePublisher(mqttClient, {
    messagesPerPollPerSecondMax: config.liveMessagesPerPollPerSecondMax,
    pollsMax: config.livePollsMax,
    logger,
    metrics,
  });
  // Republish what Redis holds (the newest state written before a restart) before consuming anything newer.
  for (const { results, series } of await scanLatest(redis, config.redisPrefix)) publisher.offer(results, series);

  const kafka = createKafka({
    clientId: 'projections',
    brokers: config.kafkaBrokers,
    security: config.kafkaSecurity,
    logger,
    retry: brokerLossRetry,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await requireTopics(admin, [topics.tallies, topics.voteDecisions, topics.deadLetters]);
  } finally {
    await admin.disconnect();
  }
  const consumerOptions = {
    readUncommitted: false, // read_committed: only what the stream's transactions committed
    // Failure detection of a dead instance: its partitions move after sessionTimeout (failover budget in
    // docs/components/projections.md).
    sessionTimeout: config.sessionTimeoutMs,
    heartbeatInterval: config.heartbeatIntervalMs,
    rebalanceTimeout: config.rebalanceTimeoutMs,
    maxBytesPerPartition: config.fetchBytesPerPartitionMax,
    maxWaitTimeInMs: 50, // live totals within a second: do not let the broker hold a fetch long
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
  };
  const deadLetterProducer = createDeadLetterProducer(kafka);
  await deadLetterProducer.connect();
  const tallyProjector = new TallyProjector({
    writer,
    redis,
    redisPrefix: config.redisPrefix,
    publisher,
    seriesWindowsMax: config.seriesWindowsMax,
    seriesPollsMax: config.livePollsMax,
    metrics,
  });
  const receiptProjector = new ReceiptProjector({ writer, metrics });
  let consuming = true;
  /** One projection: its consumer group, input topic (and its unprefixed metric label), decoder and apply. */
  const loopOf = <T>(p: {
    groupId: string;
    topic: string;
    label: string;
    decode: (buf: Buffer) => Promise<T>;
    apply: (records: T[]) => Promise<void>;
    partitionsConsumedConcurrently: number;
  }) => {
    const consumer = kafka.consumer({ groupId: p.groupId, ...consumerOptions });
    exportConsumerLag(consumer, registry, {
      name: 'projections_consumer_lag_records',
      help: 'Records of the input partition not yet fetched by its projector (after the last batch)',
      labels: {},
    });
    return new AtLeastOnceLoop<T>({
      consumer,
      topic: p.topic,
      fromBeginning: opts.fromBeginning ?? false,
      partitionsConsumedConcurrently: p.partitionsConsumedConcurrently,
      decode: p.decode,
      deadLetters: {
        producer: deadLetterProducer,
        topic: topics.deadLetters,
        consumer: p.groupId,
        counter: deadLetterCounter(registry, 'projections'),
      },
      apply: p.apply,
      retryDelayMs: batchRetryDelayMs,
      metrics: {
        records: metrics.records.labels({ topic: p.label }),
        failures: metrics.failures.labels({ topic: p.label }),
      },
      logger,
      onFatal: (err) => {
        consuming = false;
        opts.onFatal?.(err);
      },
    });
  };
  const tallyLoop = loopOf<TallyUpdate>({
    groupId: `${config.groupId}-tallies`,
    topic: topics.tallies,
    label: 'tallies',
    decode: serde.decoder('TallyUpdate'),
    apply: (tallies) => tallyProjector.apply(tallies),
    partitionsConsumedConcurrently: 1,
  });
  const receiptLoop = loopOf<VoteDecision>({
    groupId: `${config.groupId}-receipts`,
    topic: topics.voteDecisions,
    label: 'vote-decisions',
    decode: serde.decoder('VoteDecision'),
    apply: (decisions) => receiptProjector.apply(decisions),
    partitionsConsumedConcurrently: 2,
  });
  await tallyLoop.start();
  await receiptLoop.start();

  const http = createHttpServer({
    readModels,
    mqttWsUrl: config.liveMqttWsUrl,
    apiUrl: config.liveApiUrl,
    frameAncestors: config.liveFrameAncestors,
    limits: config.http,
    logger,
    health: () => ({
      ok: consuming && redis.status === 'ready',
      detail: { consuming, redis: redis.status, mqttConnected: mqttClient.connected },
    }),
  });
  const { server, port: httpPort } = await http.listen(config.httpPort);
  const metricsServer = await startMetricsServer({ registry, port: config.metricsPort, host: '0.0.0.0' });
  logger.info(
    { httpPort, metricsPort: metricsServer.port, topics: [topics.tallies, topics.voteDecisions] },
    'projections started',
  );

  return {
    httpPort,
    metricsPort: metricsServer.port,
    publisher,
    async close() {
      server.close();
      await metricsServer.close();
      await tallyLoop.stop();
      await receiptLoop.stop();
      await deadLetterProducer.disconnect();
      publisher.close();
      await mqttClient.endAsync();
      redis.disconnect();
      await cql.shutdown();
    },
  };
}
