import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { applyCqlMigrations, createCqlClient } from '@votestream/runtime';
import test from 'ava';
import { Redis } from 'ioredis';
import {
  createReadModels,
  createReadModelWriter,
  type DecisionInput,
  type Results,
  resultsKey,
  type TallyInput,
  type TallyStore,
} from '../src/index.ts';

const suffix = randomUUID().replaceAll('-', '').slice(0, 12);
const keyspace = `t_rm_${suffix}`;
const redisPrefix = `t-rm-${suffix}:`;
const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
const cql = createCqlClient({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1' });

test.before(async () => {
  await applyCqlMigrations({
    client: cql,
    keyspace,
    dir: fileURLToPath(new URL('../../../migrations/cql/', import.meta.url)),
  });
});

test.after.always(async () => {
  const keys = await redis.keys(`${redisPrefix}*`);
  if (keys.length) await redis.del(...keys);
  await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await cql.shutdown();
  redis.disconnect();
});

const tally = (pollId: string, version: number, totals: Record<string, number>, final = false): TallyInput => ({
  pollId,
  version,
  totals,
  total: Object.values(totals).reduce((a, b) => a + b, 0),
  asOf: 1_700_000_000_000 + version,
  final,
});

/** Stands in for the stream's CQL tally tables (not this package's); Redis and the receipts ledger are real. */
function fixedTallyStore(byPoll: Map<string, Results>): TallyStore {
  return { read: async (pollId) => byPoll.get(pollId) ?? null };
}

test('results in Redis only move forward: an older or equal version is ignored, a replay changes nothing', async (t) => {
  const writer = createReadModelWriter({ redis, cql, keyspace, redisPrefix });
  const pollId = `p-${randomUUID()}`;
  t.deepEqual(await writer.writeResults([tally(pollId, 5, { a: 3, b: 2 })]), [true]);
  t.deepEqual(await writer.writeResults([tally(pollId, 4, { a: 1, b: 1 }), tally(pollId, 5, { a: 9, b: 9 })]), [
    false,
    false,
  ]);
  t.deepEqual(await writer.writeResults([tally(pollId, 6, { a: 4, b: 2 })]), [true]);
  const models = createReadModels({ redis, cql, keyspace, redisPrefix, tallyStore: fixedTallyStore(new Map()) });
  t.deepEqual(await models.getResults(pollId), {
    pollId,
    totals: { a: 4, b: 2 },
    total: 6,
    version: 6,
    asOf: new Date(1_700_000_000_006).toISOString(),
    final: false,
  });
  // Replay of everything: unchanged.
  await writer.writeResults([tally(pollId, 5, { a: 3, b: 2 }), tally(pollId, 6, { a: 4, b: 2 })]);
  t.is((await models.getResults(pollId))?.version, 6);
});

test('the CAS compares versions as numbers, not as text', async (t) => {
  const writer = createReadModelWriter({ redis, cql, keyspace, redisPrefix });
  const pollId = `p-${randomUUID()}`;
  await writer.writeResults([tally(pollId, 10, { a: 10 })]);
  t.deepEqual(await writer.writeResults([tally(pollId, 9, { a: 9 })]), [false], '9 < 10 although "9" > "10" as text');
  t.deepEqual(await writer.writeResults([tally(pollId, 100, { a: 100 })]), [true]);
});

test('getResults falls back to the CQL tallies when Redis has none, and repairs Redis', async (t) => {
  const pollId = `p-${randomUUID()}`;
  const fromCql: Results = {
    pollId,
    totals: { x: 7 },
    total: 7,
    version: 7,
    asOf: new Date(0).toISOString(),
    final: true,
  };
  const models = createReadModels({
    redis,
    cql,
    keyspace,
    redisPrefix,
    tallyStore: fixedTallyStore(new Map([[pollId, fromCql]])),
  });
  t.deepEqual(await models.getResults(pollId), fromCql);
  t.is(await redis.hget(resultsKey(redisPrefix, pollId), 'version'), '7');
  t.is(await models.getResults(`p-${randomUUID()}`), null, 'a poll with no tally anywhere');
});

test('getResults never returns a version older than one it already returned, even if Redis loses data', async (t) => {
  const writer = createReadModelWriter({ redis, cql, keyspace, redisPrefix });
  const pollId = `p-${randomUUID()}`;
  const cqlTallies = new Map<string, Results>();
  const models = createReadModels({ redis, cql, keyspace, redisPrefix, tallyStore: fixedTallyStore(cqlTallies) });
  await writer.writeResults([tally(pollId, 5, { a: 5 })]);
  t.is((await models.getResults(pollId))?.version, 5);
  // Redis loses the key and an older tally is written back (e.g. a failover to a lagging replica).
  await redis.del(resultsKey(redisPrefix, pollId));
  await writer.writeResults([tally(pollId, 3, { a: 3 })]);
  t.is((await models.getResults(pollId))?.version, 5, 'remembered version wins over older Redis');
  cqlTallies.set(pollId, {
    pollId,
    totals: { a: 6 },
    total: 6,
    version: 6,
    asOf: new Date(0).toISOString(),
    final: false,
  });
  t.is((await models.getResults(pollId))?.version, 6, 'the source of truth is newer still');
});

const decision = (
  pollId: string,
  voterId: string,
  voteId: string,
  outcome: 'COUNTED' | 'REJECTED',
  extra: Partial<DecisionInput> = {},
): DecisionInput => ({
  vote: { voteId, pollId, optionId: 'a', voterId, receivedAt: 1_700_000_000_000 },
  outcome,
  reason: outcome === 'COUNTED' ? null : 'DUPLICATE',
  countedVoteId: null,
  decidedAt: 1_700_000_000_100,
  ...extra,
});

test('a receipt is pending until its decision exists, then counted; a duplicate says rejected with its reason', async (t) => {
  const writer = createReadModelWriter({ redis, cql, keyspace, redisPrefix });
  const models = createReadModels({ redis, cql, keyspace, redisPrefix, tallyStore: fixedTallyStore(new Map()) });
  const pollId = `p-${randomUUID()}`;
  const voterId = `voter-${randomUUID()}`;
  const first = randomUUID();
  const second = randomUUID();
  t.is(await models.getReceipt(pollId, voterId), null, 'pending');
  await writer.writeReceipts([decision(pollId, voterId, first, 'COUNTED')]);
  t.deepEqual(await models.getReceipt(pollId, voterId), {
    voteId: first,
    optionId: 'a',
    status: 'counted',
    reason: null,
    countedVoteId: null,
    decidedAt: new Date(1_700_000_000_100).toISOString(),
  });
  t.is(await models.getReceipt(pollId, voterId, second), null, 'the second vote is still pending');
  const dup = decision(pollId, voterId, second, 'REJECTED', { countedVoteId: first, decidedAt: 1_700_000_000_200 });
  await writer.writeReceipts([dup]);
  await writer.writeReceipts([dup, decision(pollId, voterId, first, 'COUNTED')]); // replay: no change
  t.deepEqual(await models.getReceipt(pollId, voterId, second), {
    voteId: second,
    optionId: 'a',
    status: 'rejected',
    reason: 'duplicate',
    countedVoteId: first,
    decidedAt: new Date(1_700_000_000_200).toISOString(),
  });
  t.is((await models.getReceipt(pollId, voterId))?.voteId, first, 'without a voteId: the vote that counts');
  t.is((await models.getReceipts(pollId, voterId)).length, 2);
});
