// createRedis against REAL private redis-servers with TLS (self-signed CA) and AUTH: a single node, and a
// 3-master Redis Cluster over TLS, the shape of ElastiCache cluster mode. The cluster test runs the code that
// must keep its keys in one slot: ingest's admission script and rate limiter, and the read models' CAS writes
// and start-up scan, for polls spread over every master.

import { eventually } from '@votestream/devstack';
import { casResultsBatch, type Results, resultsKey, scanLatest } from '@votestream/read-models';
import { ConfigError, createRedis, loadCommonConfig, type RedisClient } from '@votestream/runtime';
import test from 'ava';
import { Cluster } from 'ioredis';
import { createRateLimits } from '../../ingest/src/abuse/rate-limit.ts';
import { createVoteGuards } from '../../ingest/src/votes/admission.ts';
import { startPrivateRedis } from '../support/private-redis.ts';

const clientOptions = { maxRetriesPerRequest: 1, connectTimeout: 3000, commandTimeout: 5000 } as const;

async function ready(redis: RedisClient): Promise<void> {
  await eventually('the redis client ready', async () => (redis.status === 'ready' ? true : undefined), 20_000, 50);
}

test('single node: rediss:// with REDIS_TLS_CA_FILE and REDIS_PASSWORD_FILE talks TLS; the certificate is verified', async (t) => {
  const srv = await startPrivateRedis({ cluster: false });
  t.teardown(() => srv.stop());
  const port = srv.ports[0] as number;
  const config = loadCommonConfig('test', {
    REDIS_URL: `rediss://127.0.0.1:${port}`,
    REDIS_TLS_CA_FILE: srv.tls.caFile,
    REDIS_PASSWORD_FILE: srv.passwordFile,
  });
  t.is(config.redisPassword, srv.password);
  const redis = createRedis(config, clientOptions);
  t.teardown(() => redis.disconnect());
  await ready(redis);
  t.is(await redis.set('k', 'v'), 'OK');
  t.is(await redis.get('k'), 'v');
  // The server listens on no plaintext port, only on the TLS port we reached: this connection is TLS.
  t.deepEqual(await redis.call('CONFIG', 'GET', 'port'), ['port', '0']);
  t.deepEqual(await redis.call('CONFIG', 'GET', 'tls-port'), ['tls-port', String(port)]);

  // Without our CA the server's certificate does not verify: no connection, no commands.
  const untrusted = createRedis(
    loadCommonConfig('test', { REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_PASSWORD_FILE: srv.passwordFile }),
    { ...clientOptions, enableOfflineQueue: false },
  );
  const errors: string[] = [];
  untrusted.on('error', (err: Error) => errors.push(err.message));
  t.teardown(() => untrusted.disconnect());
  await eventually('a connection error', async () => (errors.length > 0 ? true : undefined), 10_000, 50).catch(
    () => undefined,
  );
  t.true(
    errors.some((m) => /self-signed|unable to verify|certificate/i.test(m)),
    `errors: ${errors.join(' | ')}`,
  );
  t.not(untrusted.status, 'ready');
});

test('REDIS_* settings that cannot work fail at start-up with a ConfigError naming the variable', (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, /REDIS_URL/],
    [{ REDIS_URL: 'not a url' }, /REDIS_URL/],
    [{ REDIS_CLUSTER: 'yes' }, /REDIS_CLUSTER/],
    [{ REDIS_CLUSTER: 'true', REDIS_URL: 'redis://127.0.0.1:6379/2' }, /REDIS_URL/],
    [{ REDIS_TLS_CA_FILE: '/nonexistent/ca.crt' }, /REDIS_TLS_CA_FILE/],
    [{ REDIS_URL: 'rediss://127.0.0.1:6379', REDIS_TLS_CA_FILE: '/nonexistent/ca.crt' }, /REDIS_TLS_CA_FILE/],
    [{ REDIS_PASSWORD_FILE: '/nonexistent/pw' }, /REDIS_PASSWORD_FILE/],
    [{ REDIS_URL: 'redis://:secret@127.0.0.1:6379', REDIS_PASSWORD_FILE: '/etc/hostname' }, /REDIS_PASSWORD_FILE/],
    [{ REDIS_PREFIX: 'a{b}:' }, /REDIS_PREFIX/],
  ];
  for (const [env, name] of bad) {
    const err = t.throws(() => loadCommonConfig('test', env), { instanceOf: ConfigError }, JSON.stringify(env));
    t.regex(err?.message ?? '', name, JSON.stringify(env));
  }
});

test('cluster over TLS: admission script, rate limits, CAS writes and the start-up scan work across 3 masters', async (t) => {
  const srv = await startPrivateRedis({ cluster: true, nodes: 3 });
  t.teardown(() => srv.stop());
  const config = loadCommonConfig('test', {
    REDIS_URL: `rediss://127.0.0.1:${srv.ports[0]}`,
    REDIS_CLUSTER: 'true',
    REDIS_TLS_CA_FILE: srv.tls.caFile,
    REDIS_PASSWORD_FILE: srv.passwordFile,
  });
  const redis = createRedis(config, { ...clientOptions, enableAutoPipelining: true });
  t.teardown(() => redis.disconnect());
  t.true(redis instanceof Cluster);
  await ready(redis);
  const masters = (redis as Cluster).nodes('master');
  t.is(masters.length, 3);

  const prefix = 'vs:';
  // Ingest's admission script (3 keys under one {poll/voter} tag) for voters whose slots cover every master.
  // A variable, not a literal: the TTL fields grow as ingest evolves (leaseMs), and extra ones are harmless.
  const ttl = { guardS: 600, idempotencyS: 600, leaseMs: 600_000 };
  const guards = createVoteGuards(redis, prefix, ttl);
  const votersPerMaster = new Map<string, number>();
  for (let i = 0; i < 60; i++) {
    const keys = guards.keys(`poll-${i % 7}`, `voter-${i}`, `idem-${i}`);
    const guardValue = `vote-${i}|opt-a|${Date.now()}`;
    const idemPending = JSON.stringify({ s: 'P', b: 'x', v: `vote-${i}` });
    const one = { guardValue, idemPending, voteId: `vote-${i}`, optionId: 'opt-a', challengeTtlS: 60 };
    const first = await guards.admit({ ...one, keys, challengeId: `ch-${i}` });
    t.deepEqual(first, { kind: 'admitted', guard: guardValue });
    const other = { ...one, keys: { ...keys, idem: `${keys.idem}-other` }, voteId: `vote-${i}b`, optionId: 'opt-b' };
    const inFlight = await guards.admit({ ...other, guardValue: `vote-${i}b|opt-b|1`, challengeId: `ch-${i}b` });
    t.is(inFlight.kind, 'in_flight', 'another attempt waits while the first one holds the lease');
    t.true(await guards.complete(keys, guardValue, JSON.stringify({ s: 'D', b: 'x', v: `vote-${i}`, r: {} })));
    const again = await guards.admit({ ...other, guardValue: `vote-${i}b|opt-b|1`, challengeId: `ch-${i}c` });
    t.deepEqual(again, { kind: 'already_voted', voteId: `vote-${i}` });
    const replay = await guards.admit({
      ...one,
      keys: guards.keys(`poll-${i % 7}`, `voter-${i}-new`, `idem-${i}-new`),
      guardValue: `vote-${i}c|opt-a|1`,
      challengeId: `ch-${i}`,
    });
    t.is(replay.kind, 'challenge_replayed');
    const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', keys.voted));
    t.is(Number(await redis.call('CLUSTER', 'KEYSLOT', keys.idem)), slot);
    t.is(Number(await redis.call('CLUSTER', 'KEYSLOT', keys.lease)), slot);
    const owner = (redis as Cluster).slots[slot]?.[0] ?? '?';
    votersPerMaster.set(owner, (votersPerMaster.get(owner) ?? 0) + 1);
  }
  t.is(votersPerMaster.size, 3, `guards spread over ${[...votersPerMaster.keys()].join(', ')}`);

  // Ingest's rate limiter (one-key script per limiter) on the cluster.
  const limits = createRateLimits({
    redis,
    keyPrefix: prefix,
    voterPoints: 2,
    voterDurationS: 60,
    networkPoints: 1000,
    networkDurationS: 60,
    fleetSize: 1,
  });
  t.is(await limits.consume('voter-rl', '10.0.0.0/24'), 0);
  t.is(await limits.consume('voter-rl', '10.0.0.0/24'), 0);
  t.true((await limits.consume('voter-rl', '10.0.0.0/24')) > 0);

  // The read models: CAS writes of 40 polls in one batch (keys in many slots), a stale write refused,
  // then the start-up scan finds every poll on every master.
  const polls = Array.from({ length: 40 }, (_, i) => `poll-cas-${i}`);
  const results = (version: number): Results[] =>
    polls.map((pollId) => ({
      pollId,
      totals: { a: version },
      total: version,
      version,
      asOf: new Date(0).toISOString(),
      final: false,
    }));
  t.deepEqual(await casResultsBatch(redis, prefix, results(5)), Array(40).fill(true));
  t.deepEqual(await casResultsBatch(redis, prefix, results(4)), Array(40).fill(false));
  const slots = new Set<string>();
  for (const p of polls) {
    const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', resultsKey(prefix, p)));
    slots.add((redis as Cluster).slots[slot]?.[0] ?? '?');
  }
  t.is(slots.size, 3, 'the 40 polls live on all 3 masters');
  const scanned = await scanLatest(redis, prefix);
  t.deepEqual(scanned.map((s) => s.results.pollId).sort(), [...polls].sort());
  t.true(scanned.every((s) => s.results.version === 5));
});
