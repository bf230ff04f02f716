// The stream processors: `node --import tsx stream/src/main.ts`. STREAM_STAGES selects the stages this
// process runs (default all: dedupe, tally, sink); metrics on STREAM_METRICS_PORT (default 9470).
import { createLogger, onShutdown } from '@votestream/runtime';
import { loadStreamConfig } from './config.ts';
import { startStream } from './service.ts';

const config = loadStreamConfig();
const logger = createLogger('stream', config.logLevel);
const stream = await startStream(config, {
  logger,
  // The one place that ends the process: the supervisor (Kubernetes, compose) restarts it, and the new tasks
  // restore from their changelogs. pino writes synchronously to stdout, so the line is out before the exit.
  onFatal: (err) => {
    logger.fatal({ err }, 'unrecoverable stream error, exiting');
    process.exit(1);
  },
});
onShutdown(logger, stream.closers);
logger.info(
  {
    stages: config.stages,
    metricsPort: stream.metricsPort,
    prefix: config.topicPrefix,
    kafkaClient: config.kafkaClient,
  },
  'stream started',
);
