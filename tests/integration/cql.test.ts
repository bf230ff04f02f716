import { stack, uniqueId } from '@votestream/devstack';
import test from 'ava';
import cassandra from 'cassandra-driver';

test('the CQL database creates a keyspace and a table, and reads back what was written', async (t) => {
  const client = new cassandra.Client({
    contactPoints: stack.cqlContactPoints,
    localDataCenter: stack.cqlLocalDataCenter,
  });
  await client.connect();
  const keyspace = uniqueId('stack_');
  t.teardown(async () => {
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await client.shutdown();
  });
  await client.execute(
    `CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
  );
  await client.execute(
    `CREATE TABLE ${keyspace}.totals (poll_id text, option_id text, votes bigint, PRIMARY KEY (poll_id, option_id))`,
  );
  const one = cassandra.types.consistencies.one;
  // Absolute values with explicit write timestamps: the older write loses whatever the arrival order.
  await client.execute(
    `INSERT INTO ${keyspace}.totals (poll_id, option_id, votes) VALUES (?, ?, ?) USING TIMESTAMP 2`,
    ['p', 'a', 7],
    { prepare: true, consistency: one },
  );
  await client.execute(
    `INSERT INTO ${keyspace}.totals (poll_id, option_id, votes) VALUES (?, ?, ?) USING TIMESTAMP 1`,
    ['p', 'a', 3],
    { prepare: true, consistency: one },
  );
  await client.execute(
    `INSERT INTO ${keyspace}.totals (poll_id, option_id, votes) VALUES (?, ?, ?) USING TIMESTAMP 1`,
    ['p', 'b', 5],
    { prepare: true, consistency: one },
  );

  const rows = await client.execute(`SELECT option_id, votes FROM ${keyspace}.totals WHERE poll_id = ?`, ['p'], {
    prepare: true,
    consistency: one,
  });
  t.deepEqual(
    rows.rows.map((r) => [r.option_id, Number(r.votes)]),
    [
      ['a', 7],
      ['b', 5],
    ],
  );
});
