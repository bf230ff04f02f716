import { createLogger, onShutdown } from '@votestream/runtime';
import { startIngest } from './app.ts';
import { loadIngestConfig } from './config.ts';

const config = loadIngestConfig();
const logger = createLogger('ingest', config.logLevel);
const ingest = await startIngest(config, { logger });
onShutdown(logger, [() => ingest.close()], config.shutdownDrainMs + 5000);
