import { join } from 'node:path';
import { applyCqlMigrations, type CqlClient, createCqlClient } from '@votestream/runtime';
import { repoRoot } from './process.ts';
import { stack } from './stack.ts';

const migrated = new Map<string, Promise<void>>();

/** Applies migrations/cql to `keyspace` on the stack's CQL database, once per keyspace and process. */
export function migrateKeyspace(keyspace: string): Promise<void> {
  let done = migrated.get(keyspace);
  if (!done) {
    done = withCql((client) => applyCqlMigrations({ client, keyspace, dir: join(repoRoot, 'migrations/cql') })).then(
      () => undefined,
    );
    migrated.set(keyspace, done);
    // A failed migration is not remembered: the next caller tries again.
    done.catch(() => migrated.delete(keyspace));
  }
  return done;
}

/** Drops a test's keyspace (teardown); a keyspace that is gone already is fine. */
export async function dropKeyspace(keyspace: string): Promise<void> {
  migrated.delete(keyspace);
  await withCql((client) => client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`));
}

/** Runs `fn` with a CQL client on the stack, shut down afterwards. */
export async function withCql<T>(fn: (client: CqlClient) => Promise<T>): Promise<T> {
  const client = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  try {
    return await fn(client);
  } finally {
    await client.shutdown();
  }
}
