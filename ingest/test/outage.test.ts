import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import test from 'ava';
import { startIngest, voteIdOf } from '../src/index.ts';
import { ballot, createPoll, readTopic, silent, solvedChallenge, type TestEnv, testEnv, vote } from './helpers.ts';

/** A TCP proxy in front of a real service (the broker by default) that the test can cut and restore. */
function kafkaProxy(target = { host: '127.0.0.1', port: 9092 }) {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(target);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  return {
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
      ),
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        open = false;
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ingest/src/main.ts as its own process, on env's topics, Redis prefix and keys; resolves when ready. */
async function spawnIngest(env: TestEnv, extra: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'ingest-test-'));
  writeFileSync(join(dir, 'jwt.pem'), env.config.jwtPublicKeyPem as string);
  writeFileSync(join(dir, 'altcha.key'), env.config.altchaHmacKey);
  const freePort = () =>
    new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'ingest/src/main.ts'], {
    env: {
      ...process.env,
      INGEST_PORT: String(port),
      INGEST_METRICS_PORT: String(metricsPort),
      TOPIC_PREFIX: env.prefix,
      REDIS_PREFIX: env.config.redisPrefix,
      CQL_KEYSPACE: env.config.cqlKeyspace,
      JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pem'),
      ALTCHA_HMAC_KEY_FILE: join(dir, 'altcha.key'),
      ALTCHA_MAX_NUMBER: '1000',
      LOG_LEVEL: 'warn',
      ...extra,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const startBy = Date.now() + 90_000;
  while (Date.now() < startBy) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null) throw new Error(`ingest exited with ${child.exitCode} before it was ready`);
    await sleep(250);
  }
  return { child, exited, url, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}

/** Waits until `n` votes sit in ingest's produce batcher (admitted in Redis, not yet sent to Kafka). */
async function votesInFlight(metricsUrl: string, n: number): Promise<void> {
  const by = Date.now() + 30_000;
  while (Date.now() < by) {
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    const m = /ingest_produce_votes_in_flight\{[^}]*\} (\d+)/.exec(text);
    if (m && Number(m[1]) === n) return;
    await sleep(20);
  }
  throw new Error(`${n} votes never were in flight`);
}

test.serial(
  'Kafka unreachable mid-test: votes get 503, every 202 is in the topic, and votes succeed again once it is back',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const proxy = kafkaProxy();
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
    const acknowledged = new Set<string>();
    const castOne = async (token?: string, idempotencyKey?: string) => {
      const voter = token ?? (await env.voter());
      const res = await vote(url, pollId, {
        token: voter,
        altcha: await solvedChallenge(url, voter, pollId),
        ...(idempotencyKey ? { idempotencyKey } : {}),
      });
      if (res.status === 202) acknowledged.add(res.body.voteId);
      return res;
    };

    for (let i = 0; i < 10; i++) t.is((await castOne()).status, 202);

    proxy.cut();
    const during: number[] = [];
    let refused: { token: string; key: string } | undefined;
    const deadline = Date.now() + 90_000;
    while (refused === undefined && Date.now() < deadline) {
      const token = await env.voter();
      const key = randomUUID();
      const res = await castOne(token, key);
      during.push(res.status);
      if (res.status === 503) {
        t.is(res.body.code, 'unavailable');
        t.true(Number(res.headers.get('retry-after')) >= 1);
        refused = { token, key };
      }
    }
    t.truthy(refused, 'a vote was refused with 503 while Kafka was unreachable');
    t.true(
      during.every((s) => s === 202 || s === 503),
      `only 202 or 503 while cut: ${during.join(',')}`,
    );
    // Quick burst while still cut: nothing but 503.
    const burst = await Promise.all(Array.from({ length: 5 }, () => castOne()));
    t.deepEqual(
      burst.map((r) => r.status),
      [503, 503, 503, 503, 503],
    );

    proxy.restore();
    let retried: Awaited<ReturnType<typeof vote>> | undefined;
    const back = Date.now() + 90_000;
    while (Date.now() < back) {
      // The refused voter retries with the same Idempotency-Key: the guard was released, so it goes through.
      retried = await castOne(refused?.token, refused?.key);
      if (retried.status === 202) break;
      t.is(retried.status, 503);
      await sleep(500);
    }
    t.is(retried?.status, 202);
    for (let i = 0; i < 5; i++) t.is((await castOne()).status, 202);

    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'), (r) => {
      const ids = new Set(r.map((v) => v.voteId));
      return [...acknowledged].every((id) => ids.has(id));
    });
    const inTopic = new Set(records.map((v) => v.voteId));
    const lost = [...acknowledged].filter((id) => !inTopic.has(id));
    t.deepEqual(lost, [], 'every acknowledged vote is in the votes topic');
    t.true(acknowledged.size >= 16);
  },
);

test.serial(
  'SIGTERM drains in-flight votes: the votes in the batcher are acknowledged and in the topic, then the process exits 0',
  async (t) => {
    const cleanup: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const fn of cleanup) await fn();
    });
    const env = await testEnv((fn) => cleanup.push(fn));
    // A long linger keeps the votes in the batcher long enough to send SIGTERM while they wait there.
    const { child, exited, url, metricsUrl } = await spawnIngest(env, { PRODUCE_LINGER_MS: '1000' });
    cleanup.unshift(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const { pollId } = await createPoll(url, await env.admin());
    const ballots = await Promise.all(Array.from({ length: 20 }, async () => ballot(url, pollId, await env.voter())));
    const pending = ballots.map((b) => vote(url, pollId, b));
    // Wait until the votes sit in the batcher, then ask the process to stop.
    await votesInFlight(metricsUrl, 20);
    child.kill('SIGTERM');
    const results = await Promise.all(pending);
    t.deepEqual(
      results.map((r) => r.status),
      Array(20).fill(202),
    );
    t.is(await exited, 0);
    const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
    const ids = results.map((r) => r.body.voteId as string).sort();
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'), (r) => r.length >= 20);
    t.deepEqual(records.map((v) => v.voteId).sort(), ids);
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
    cleanup.unshift(async () => {
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
    });
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
    first.child.kill('SIGKILL');
    t.true((await lost) instanceof Error, 'the voter never got an answer');
    await first.exited;

    const second = await spawnIngest(env, fast);
    cleanup.unshift(async () => {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    });
    // Until the dead process's lease expires, a resend is told to come back later, never lost.
    let answer = await vote(second.url, pollId, {
      token,
      idempotencyKey: key,
      altcha: await solvedChallenge(second.url, token, pollId),
    });
    const deadline = Date.now() + 30_000;
    while (answer.status === 503 && Date.now() < deadline) {
      t.is(answer.body.code, 'unavailable');
      await sleep(Number(answer.headers.get('retry-after') ?? 1) * 1000); // as a client would
      answer = await vote(second.url, pollId, {
        token,
        idempotencyKey: key,
        altcha: await solvedChallenge(second.url, token, pollId),
      });
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
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'), (r) =>
      r.some((v) => v.voteId === answer.body.voteId),
    );
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
    const proxy = kafkaProxy({ host: '127.0.0.1', port: 6379 });
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
    let ready = 200;
    for (const until = Date.now() + 30_000; ready === 200 && Date.now() < until; await sleep(200)) {
      ready = (await fetch(`${url}/readyz`)).status;
    }
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
    const records = await readTopic<VoteCast>(`${env.prefix}votes`, serde.decoder('VoteCast'), (r) =>
      r.some((v) => v.voteId === back?.body.voteId),
    );
    t.deepEqual(
      records.filter((v) => v.voterId === voterId).map((v) => v.voteId),
      [back?.body.voteId],
      'the refused attempt was never produced; the accepted one was, once',
    );
  },
);
