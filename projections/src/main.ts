// The projections service: `node --import tsx projections/src/main.ts` (env: see config.ts and docs/components/projections.md).
import { createLogger, onShutdown } from '@votestream/runtime';
import { loadProjectionsConfig } from './config.ts';
import { startProjections } from './service.ts';

const config = loadProjectionsConfig();
const logger = createLogger('projections', config.logLevel);
const projections = await startProjections(config, {
  logger,
  fromBeginning: config.fromBeginning,
  onFatal: (err) => {
    logger.fatal({ err }, 'a projector consumer stopped for good: exiting for the supervisor to restart us');
    process.exit(1);
  },
  ...(config.schemaSubjectPrefix !== '' ? { subjectPrefix: config.schemaSubjectPrefix } : {}),
});
onShutdown(logger, [() => projections.close()]);
