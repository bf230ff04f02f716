// Applies the CQL migrations in migrations/cql to the keyspace named by CQL_KEYSPACE (default votestream).
// Usage: npm run migrate   (the stack's `up` and the test command run it for you)
import { fileURLToPath } from 'node:url';
import { applyCqlMigrations, createCqlClient, createLogger, loadCommonConfig } from '@votestream/runtime';

const config = loadCommonConfig('migrate');
const logger = createLogger('migrate', config.logLevel);
const client = createCqlClient({
  contactPoints: config.cqlContactPoints,
  localDataCenter: config.cqlLocalDataCenter,
  security: config.cqlSecurity,
});
try {
  const applied = await applyCqlMigrations({
    client,
    keyspace: config.cqlKeyspace,
    dir: fileURLToPath(new URL('../migrations/cql/', import.meta.url)),
    ...(process.env.CQL_REPLICATION ? { replication: process.env.CQL_REPLICATION } : {}),
    logger,
  });
  logger.info({ keyspace: config.cqlKeyspace, applied }, applied.length ? 'migrations applied' : 'schema up to date');
} finally {
  await client.shutdown();
}
