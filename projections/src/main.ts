// The projections service: `node --import tsx projections/src/main.ts` (env: see config.ts and docs/components/projections.md).
import { createLogger, onShutdown } from '@votestream/runtime';
import { loadProjectionsConfig } from './config.ts';
import { startProjections } from './service.ts';

const config = loadProjectionsConfig();
const logger = createLogger('projections', config.logLevel);
const projections = await startProjections(config, {
  logger,
  // A partition the group has never committed an offset for is read from its beginning (auto.offset.reset =
  // earliest), not from its end: an instance that receives it in a rebalance after another instance died
  // before its first commit must not skip the decisions and tallies written meanwhile (found by the chaos run:
  // receipts missing). Both projections are idempotent, so a re-read costs time, never correctness.
  fromBeginning: process.env.PROJECTIONS_FROM_BEGINNING !== 'false',
  onFatal: (err) => {
    logger.fatal({ err }, 'a projector consumer stopped for good: exiting for the supervisor to restart us');
    process.exit(1);
  },
  ...(process.env.SCHEMA_SUBJECT_PREFIX ? { subjectPrefix: process.env.SCHEMA_SUBJECT_PREFIX } : {}),
});
onShutdown(logger, [() => projections.close()]);
