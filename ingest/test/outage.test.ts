import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPoll, eventually, readTopic, repoRoot, startPipelineService } from '@votestream/devstack';
import { withTimeout } from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import test from 'ava';
import { startIngest, voteIdOf } from '../src/index.ts';
import { ballot, silent, solvedChallenge, type TestEnv, tcpProxy, testEnv, vote, votesInFlight } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ingest/src/main.ts as its own process (the kit's startPipelineService), on env's topics, Redis prefix and keys. */
async function spawnIngest(env: TestEnv, extra: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'ingest-test-'));
  writeFileSync(join(dir, 'jwt.pem'), env.config.jwtPublicKeyPem as string);
  writeFileSync(join(dir, 'altcha.key'), env.config.altchaHmacKey);
  return startPipelineService('ingest', {
    name: `ingest-${env.prefix.slice(0, -1)}`,
    env: {
      TOPIC_PREFIX: env.prefix,
      REDIS_PREFIX: env.config.redisPrefix,
      CQL_KEYSPACE: env.config.cqlKeyspace,
      JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pem'),
      ALTCHA_HMAC_KEY_FILE: join(dir, 'altcha.key'),
      ALTCHA_MAX_NUMBER: '1000',
      LOG_LEVEL: 'warn',
      ...extra,
    },
    logDir: join(repoRoot, 'test-results/ingest-outage'),
  });
}

test.serial(
  'Kafka unreachable mid-test: votes get 503, every 202 is in the topic, and votes succeed again once it is back',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const proxy = tcpProxy();
    const proxyPort = await proxy.listen();
    cleanup.push(() => proxy.close());
    const env = await testEnv((fn) => cleanup.push(fn), { PRODUCE_BACKOFF_MS: '300', RATE_NETWORK_POINTS: '100000' });
    const ingest = await startIngest(
      { ...env.config, kafkaBrokers: [`127.0.0.1:${proxyPort}`] },
      {
        logger: silent,
        // Every broker connection (bootstrap and the advertised 127.0.0.1:9092) goes through the proxy.
        kafkaSocketFactory: ({ onConnect }) => connect({ host: '127.0.0.1', port: proxyPort }, onConnect),
      },
    );
    cleanup.unshift(() => ingest.close());
    const url = ingest.url;
    const { pollId } = await createPoll(url, await env.admin());
    // The test's own account: every 202 (voteId) and every voter answered 503 (whose vote must not be in Kafka).
    const acknowledged = new Set<string>();
    const refusedVoters = new Set<string>();
    const castOne = async (voterId = `voter-${randomUUID()}`, idempotencyKey = randomUUID()) => {
      const token = await env.voter(voterId);
      const res = await vote(url, pollId, {
        token,
        altcha: await solvedChallenge(url, token, pollId),
        idempotencyKey,
      });
      if (res.status === 202) acknowledged.add(res.body.voteId);
      if (res.status === 503) refusedVoters.add(voterId);
      return { ...res, voterId, idempotencyKey };
    };

    for (let i = 0; i < 10; i++) t.is((await castOne()).status, 202);

    // Cut: the broker connections are closed and new ones refused. Votes are cast one at a time, so none can
    // have been acknowledged by Kafka before the cut: each gets 503 unavailable.
    proxy.cut();
    const refused = await castOne();
    t.is(refused.status, 503, JSON.stringify(refused.body));
    t.is(refused.body.code, 'unavailable');
    t.is(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    t.is(refused.headers.get('retry-after'), '2', 'a vote Kafka did not acknowledge: Retry-After 2 s');
    // A burst while still cut: nothing but 503.
    const burst = await Promise.all(Array.from({ length: 5 }, () => castOne()));
    t.deepEqual(
      burst.map((r) => [r.status, r.body.code]),
      Array(5).fill([503, 'unavailable']),
    );

    proxy.restore();
    let retried: Awaited<ReturnType<typeof castOne>> | undefined;
    const back = Date.now() + 90_000;
    while (Date.now() < back) {
      // The refused voter retries with the same Idempotency-Key: the guard was released, so it goes through.
      retried = await castOne(refused.voterId, refused.idempotencyKey);
      if (retried.status === 202) break;
      t.is(retried.status, 503);
      await sleep(500);
    }
    t.is(retried?.status, 202);
    refusedVoters.delete(refused.voterId);
    for (let i = 0; i < 5; i++) t.is((await castOne()).status, 202);

    // The topic, read to its end: exactly the 16 acknowledged votes (10 + the retry + 5); none of the 5 voters
    // refused in the burst, and the retried voter once.
    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'));
    t.is(acknowledged.size, 16);
    t.deepEqual(records.map((v) => v.voteId).sort(), [...acknowledged].sort(), 'the topic holds exactly the 202s');
    t.deepEqual(
      records.filter((v) => refusedVoters.has(v.voterId)),
      [],
      'no vote answered 503 is in the topic',
    );
    t.deepEqual(
      records.filter((v) => v.voterId === refused.voterId).map((v) => v.voteId),
      [retried?.body.voteId],
    );
  },
);

test.serial(
  'close (what SIGTERM runs) drains in-flight votes: 20 votes held at a paused broker connection are all acknowledged and in the topic',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const proxy = tcpProxy();
    const proxyPort = await proxy.listen();
    cleanup.push(() => proxy.close());
    const env = await testEnv((fn) => cleanup.push(fn));
    const ingest = await startIngest(
      { ...env.config, kafkaBrokers: [`127.0.0.1:${proxyPort}`] },
      {
        logger: silent,
        kafkaSocketFactory: ({ onConnect }) => connect({ host: '127.0.0.1', port: proxyPort }, onConnect),
      },
    );
    let closed = false;
    cleanup.unshift(async () => {
      if (!closed) await ingest.close();
    });
    const url = ingest.url;
    const { pollId } = await createPoll(url, await env.admin());
    const ballots = await Promise.all(Array.from({ length: 20 }, async () => ballot(url, pollId, await env.voter())));
    // Hold the broker connections: every admitted vote waits for its acknowledgement, however slowly the 20
    // requests arrive (no timing window), until the drain has begun.
    proxy.hold();
    const pending = ballots.map((b) => vote(url, pollId, b));
    await votesInFlight(ingest.metricsUrl, 20);
    const closing = ingest.close();
    closed = true;
    proxy.release();
    const results = await Promise.all(pending);
    t.deepEqual(
      results.map((r) => r.status),
      Array(20).fill(202),
    );
    await withTimeout(closing, 60_000, 'ingest.close() after the drain');
    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'));
    t.deepEqual(records.map((v) => v.voteId).sort(), results.map((r) => r.body.voteId as string).sort());
  },
);

test.serial(
  'SIGTERM runs the drain: a vote in the batcher is acknowledged and in the topic, then the process exits 0',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const env = await testEnv((fn) => cleanup.push(fn));
    // A long linger (the maximum, 1 s) keeps the one vote in the batcher while the test sends SIGTERM.
    const { process: ingest, url, metricsUrl } = await spawnIngest(env, { PRODUCE_LINGER_MS: '1000' });
    cleanup.unshift(() => ingest.kill9());
    const { pollId } = await createPoll(url, await env.admin());
    const token = await env.voter();
    const pending = vote(url, pollId, { token, altcha: await solvedChallenge(url, token, pollId) });
    await votesInFlight(metricsUrl, 1);
    const stopped = ingest.stop(60_000);
    const result = await pending;
    t.is(result.status, 202);
    t.is(await withTimeout(stopped, 60_000, 'ingest exits after SIGTERM'), 0);
    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'));
    t.deepEqual(
      records.map((v) => v.voteId),
      [result.body.voteId],
    );
  },
);

test.serial(
  'an ingest process killed between admitting a vote and Kafka acknowledging it: the retry with the same key is accepted once its lease expired, with the same voteId',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const env = await testEnv((fn) => cleanup.push(fn));
    // The shortest lease these Kafka settings allow (see config.ts produceAppendBoundMs).
    const fast = {
      PRODUCE_RETRIES: '1',
      PRODUCE_REQUEST_TIMEOUT_MS: '2000',
      PRODUCE_TIMEOUT_MS: '1000',
      VOTE_PRODUCE_DEADLINE_MS: '14000',
    };
    // A long linger (the maximum, 1 s) holds the admitted vote in the batcher, so the kill normally lands before
    // anything reaches Kafka.
    const first = await spawnIngest(env, { ...fast, PRODUCE_LINGER_MS: '1000' });
    cleanup.unshift(() => first.process.kill9());
    const { pollId } = await createPoll(first.url, await env.admin());
    const voterId = `voter-${randomUUID()}`;
    const token = await env.voter(voterId);
    const key = randomUUID();
    const lost = vote(first.url, pollId, {
      token,
      idempotencyKey: key,
      altcha: await solvedChallenge(first.url, token, pollId),
    }).catch((err: unknown) => err);
    await votesInFlight(first.metricsUrl, 1);
    const killed = first.process.kill9();
    t.true((await lost) instanceof Error, 'the voter never got an answer');
    await withTimeout(killed, 30_000, 'ingest exits after SIGKILL');

    const second = await spawnIngest(env, fast);
    cleanup.unshift(() => second.process.kill9());
    // Until the dead process's lease expires, a resend is told to come back later, never lost. A 503 gives the
    // proof-of-work solution back, so the client sends the same one again (challenges are rate-limited per voter).
    const altcha = await solvedChallenge(second.url, token, pollId);
    let answer = await vote(second.url, pollId, { token, idempotencyKey: key, altcha });
    const deadline = Date.now() + 30_000;
    while (answer.status === 503 && Date.now() < deadline) {
      t.is(answer.body.code, 'unavailable');
      await sleep(Number(answer.headers.get('retry-after') ?? 1) * 1000); // as a client would
      answer = await vote(second.url, pollId, { token, idempotencyKey: key, altcha });
    }
    t.is(answer.status, 202, JSON.stringify(answer.body));
    t.is(answer.body.voteId, voteIdOf(pollId, voterId, key), 'the voteId is the one derived from the key');
    const again = await vote(second.url, pollId, {
      token,
      idempotencyKey: key,
      altcha: await solvedChallenge(second.url, token, pollId),
    });
    t.deepEqual([again.status, again.body.voteId], [202, answer.body.voteId]);

    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'));
    const mine = records.filter((v) => v.voterId === voterId);
    t.true(
      mine.some((v) => v.voteId === answer.body.voteId),
      'the accepted vote is in the topic',
    );
    // Had the killed process's batch left before the kill, its copy is there too, the same vote (same voteId): the
    // stream's dedupe counts it once. Nothing else of this voter's is in the topic.
    t.true(mine.length <= 2 && mine.every((v) => v.voteId === answer.body.voteId), JSON.stringify(mine));
    t.log(mine.length === 1 ? 'the killed process had sent nothing' : 'the killed process had already sent its copy');
  },
);

test.serial(
  'Redis unreachable: votes get 503 and are not produced, readiness fails, and the same vote goes through once Redis is back',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const proxy = tcpProxy({ host: '127.0.0.1', port: 6379 });
    const proxyPort = await proxy.listen();
    cleanup.push(() => proxy.close());
    const env = await testEnv((fn) => cleanup.push(fn), { REDIS_URL: `redis://127.0.0.1:${proxyPort}` });
    const ingest = await startIngest(env.config, { logger: silent });
    cleanup.unshift(() => ingest.close());
    const url = ingest.url;
    const { pollId } = await createPoll(url, await env.admin());
    t.is((await vote(url, pollId, await ballot(url, pollId, await env.voter()))).status, 202);

    const voterId = `voter-${randomUUID()}`;
    const token = await env.voter(voterId);
    const key = randomUUID();
    // Issuing a challenge needs Redis too (its counters): solved before the cut.
    const altcha = await solvedChallenge(url, token, pollId);
    proxy.cut();
    const refused = await vote(url, pollId, { token, idempotencyKey: key, altcha });
    t.is(refused.status, 503, JSON.stringify(refused.body));
    t.is(refused.body.code, 'unavailable');
    t.true(Number(refused.headers.get('retry-after')) >= 1);
    const ready = await eventually(
      'readiness to fail',
      async () => {
        const status = (await fetch(`${url}/readyz`)).status;
        return status === 200 ? undefined : status;
      },
      30_000,
      200,
    ).catch(() => 200);
    t.is(ready, 503, 'not ready while Redis is unreachable');

    proxy.restore();
    let back: Awaited<ReturnType<typeof vote>> | undefined;
    for (const until = Date.now() + 60_000; Date.now() < until; await sleep(500)) {
      // Until Redis is back the challenge endpoint answers 503 as well: keep asking.
      const fresh = await solvedChallenge(url, token, pollId).catch(() => null);
      if (fresh === null) continue;
      back = await vote(url, pollId, { token, idempotencyKey: key, altcha: fresh });
      if (back.status !== 503) break;
    }
    t.is(back?.status, 202, JSON.stringify(back?.body));

    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'));
    t.deepEqual(
      records.filter((v) => v.voterId === voterId).map((v) => v.voteId),
      [back?.body.voteId],
      'the refused attempt was never produced; the accepted one was, once',
    );
  },
);
