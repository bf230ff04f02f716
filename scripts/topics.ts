// Creates the pipeline's Kafka topics (libs/runtime pipelineTopicSpecs) under TOPIC_PREFIX, if missing.
// Usage: npm run topics   (the demo and the system tests do it for you)
import { createKafka, createLogger, ensureTopics, loadCommonConfig, pipelineTopicSpecs } from '@votestream/runtime';

const config = loadCommonConfig('topics');
const logger = createLogger('topics', config.logLevel);
const admin = createKafka({
  clientId: 'votestream-topics',
  brokers: config.kafkaBrokers,
  security: config.kafkaSecurity,
  logger,
}).admin();
await admin.connect();
try {
  const specs = pipelineTopicSpecs(config.topicPrefix);
  await ensureTopics(admin, specs);
  logger.info({ topics: specs.map((s) => `${s.topic}:${s.partitions}`) }, 'topics ready');
} finally {
  await admin.disconnect();
}
