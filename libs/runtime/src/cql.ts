import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import type { CqlSecurity } from './config.ts';
import type { Logger } from './logger.ts';

export type CqlClient = cassandra.Client;

/** A CQL client for ScyllaDB (production) or Cassandra 5 (local stand-in). Consistency is explicit per query. */
export function createCqlClient(opts: {
  contactPoints: string[];
  localDataCenter: string;
  keyspace?: string;
  /** TLS and PasswordAuthenticator credentials (CommonConfig.cqlSecurity); omitted = plaintext, no auth (local stack). */
  security?: CqlSecurity;
}): CqlClient {
  return new cassandra.Client(cqlClientOptions(opts));
}

/** The driver options createCqlClient uses (exported so tests can check what TLS/auth settings become). */
export function cqlClientOptions(opts: {
  contactPoints: string[];
  localDataCenter: string;
  keyspace?: string;
  security?: CqlSecurity;
}): cassandra.ClientOptions {
  const security = opts.security ?? { tls: false };
  return {
    contactPoints: opts.contactPoints,
    localDataCenter: opts.localDataCenter,
    ...(opts.keyspace ? { keyspace: opts.keyspace } : {}),
    // The node's certificate must verify (against caPem, or Node's CA bundle) and name the address dialled.
    ...(security.tls
      ? { sslOptions: { rejectUnauthorized: true, ...(security.caPem !== undefined ? { ca: [security.caPem] } : {}) } }
      : {}),
    ...(security.auth
      ? { authProvider: new cassandra.auth.PlainTextAuthProvider(security.auth.username, security.auth.password) }
      : {}),
    queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true },
    socketOptions: { connectTimeout: 5000, readTimeout: 12000 },
  };
}

/**
 * Applies `migrations/cql/NNN_name.cql` in order, once each, recording them in `<keyspace>.schema_migrations`.
 * `{{keyspace}}` and `{{replication}}` in a file are substituted. Statements are separated by `;` at line end.
 * Every statement must be idempotent (IF NOT EXISTS), so a crash half-way through is repaired by running again.
 */
export async function applyCqlMigrations(opts: {
  client: CqlClient;
  keyspace: string;
  dir: string;
  replication?: string;
  logger?: Logger;
}): Promise<string[]> {
  const { client, keyspace, dir } = opts;
  if (!/^[a-z][a-z0-9_]{0,47}$/.test(keyspace)) throw new Error(`invalid keyspace name ${JSON.stringify(keyspace)}`);
  const replication = opts.replication ?? "{'class': 'SimpleStrategy', 'replication_factor': 1}";
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = ${replication}`);
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schema_migrations (name text PRIMARY KEY, applied_at timestamp)`,
  );
  const done = new Set(
    (await client.execute(`SELECT name FROM ${keyspace}.schema_migrations`)).rows.map((r) => String(r.name)),
  );
  const files = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.cql$/.test(f)).sort();
  const applied: string[] = [];
  for (const file of files) {
    if (done.has(file)) continue;
    const text = (await readFile(join(dir, file), 'utf8'))
      .replaceAll('{{keyspace}}', keyspace)
      .replaceAll('{{replication}}', replication);
    const statements = text
      .split(/;\s*$/m)
      .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
      .filter((s) => s !== '');
    for (const statement of statements) await client.execute(statement);
    await client.execute(
      `INSERT INTO ${keyspace}.schema_migrations (name, applied_at) VALUES (?, toTimestamp(now()))`,
      [file],
    );
    opts.logger?.info({ file, keyspace }, 'applied CQL migration');
    applied.push(file);
  }
  return applied;
}
