import { createLogger, onShutdown } from '@votestream/runtime';
import { loadIngestConfig } from './config.ts';
import { ingestStopBoundMs, startIngest } from './service.ts';

const config = loadIngestConfig();
const logger = createLogger('ingest', config.logLevel);
const ingest = await startIngest(config, { logger });
onShutdown(logger, [() => ingest.close()], ingestStopBoundMs(config));
