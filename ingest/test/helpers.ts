import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createTopics, eventually, migrateKeyspace } from '@votestream/devstack';
import { createLogger } from '@votestream/runtime';
import { createChallenge, solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import { type IngestConfig, loadIngestConfig, mintToken } from '../src/index.ts';

export const silent = createLogger('ingest-test', 'silent');

export const testKeyspace = 'ingest_test';
/** A private CQL keyspace with the read-model tables (receipts, tallies), migrated once per worker. */
export const migrateTestKeyspace = () => migrateKeyspace(testKeyspace);

export interface TestEnv {
  prefix: string;
  config: IngestConfig;
  privateKeyPem: string;
  voter(sub?: string): Promise<string>;
  admin(): Promise<string>;
}

/** Isolated config: its own topics, Redis prefix, signing key and ALTCHA key; port 0. */
export async function testEnv(
  teardown: (fn: () => Promise<unknown>) => void,
  overrides: Record<string, string> = {},
): Promise<TestEnv> {
  const id = randomBytes(5).toString('hex');
  const prefix = `t-${id}.`;
  teardown(await createTopics(prefix, { votePartitions: 3, only: ['votes', 'polls'] }));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const base = loadIngestConfig({
    INGEST_PORT: '0',
    TOPIC_PREFIX: prefix,
    REDIS_PREFIX: `t-${id}:`,
    CQL_KEYSPACE: testKeyspace,
    ALTCHA_MAX_NUMBER: '1000',
    INGEST_METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
    ...overrides,
  });
  const config: IngestConfig = {
    ...base,
    jwtPublicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    altchaHmacKey: randomBytes(32).toString('hex'),
  };
  return {
    prefix,
    config,
    privateKeyPem,
    voter: (sub = `voter-${randomUUID()}`) => mintToken({ privateKeyPem, sub }),
    admin: () => mintToken({ privateKeyPem, sub: 'admin-1', admin: true }),
  };
}

/**
 * Fetches a challenge for this voter (token) in this poll, as the SDK does, and solves it; returns the X-Altcha
 * value. Challenges are bound to (sub, poll): the vote must be sent with a token of the same `sub`.
 */
export async function solvedChallenge(baseUrl: string, token: string, pollId: string): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/challenge?pollId=${encodeURIComponent(pollId)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`challenge: ${res.status} ${await res.text()}`);
  const challenge = await res.json();
  const solution = await solveChallenge({ challenge, deriveKey });
  if (!solution) throw new Error('challenge not solved');
  return Buffer.from(JSON.stringify({ challenge, solution })).toString('base64');
}

/** A token and a challenge solved for it in this poll: `vote(url, pollId, await ballot(url, pollId, token))`. */
export async function ballot(baseUrl: string, pollId: string, token: string) {
  return { token, altcha: await solvedChallenge(baseUrl, token, pollId) };
}

/** A challenge signed with another key (forged) and solved. */
export async function forgedChallenge(): Promise<string> {
  const challenge = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 10,
    deriveKey,
    hmacSignatureSecret: 'not-the-server-key',
    hmacKeySignatureSecret: 'not-the-server-key:derived-key',
    expiresAt: Math.floor(Date.now() / 1000) + 60,
  });
  const solution = await solveChallenge({ challenge, deriveKey });
  return Buffer.from(JSON.stringify({ challenge, solution })).toString('base64');
}

export interface VoteOptions {
  token: string;
  optionId?: string;
  idempotencyKey?: string;
  altcha?: string | null;
  body?: string;
  headers?: Record<string, string>;
}

export async function vote(baseUrl: string, pollId: string, o: VoteOptions) {
  const headers: Record<string, string> = {
    authorization: `Bearer ${o.token}`,
    'content-type': 'application/json',
    'idempotency-key': o.idempotencyKey ?? randomUUID(),
    ...o.headers,
  };
  if (o.altcha) headers['x-altcha'] = o.altcha;
  const res = await fetch(`${baseUrl}/v1/polls/${pollId}/votes`, {
    method: 'POST',
    headers,
    body: o.body ?? JSON.stringify({ optionId: o.optionId ?? 'a' }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text), headers: res.headers };
}

/**
 * A TCP proxy in front of a real service (the broker by default) that the test can cut and restore, or hold
 * (connections stay open but no byte is forwarded, so requests wait) and release.
 */
export function tcpProxy(target = { host: '127.0.0.1', port: 9092 }) {
  const sockets = new Set<Socket>();
  let open = true;
  let held = false;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(target);
    if (held) {
      client.pause();
      upstream.pause();
    }
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
    hold() {
      held = true;
      for (const s of sockets) s.pause();
    },
    release() {
      held = false;
      for (const s of sockets) s.resume();
    },
    close: () =>
      new Promise<void>((resolve) => {
        open = false;
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Waits until `n` votes sit in ingest's produce batcher (admitted in Redis, not yet sent to Kafka). */
export async function votesInFlight(metricsUrl: string, n: number): Promise<void> {
  await eventually(
    `${n} votes in flight`,
    async () => {
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      const m = /ingest_produce_votes_in_flight\{[^}]*\} (\d+)/.exec(text);
      return m && Number(m[1]) === n ? true : undefined;
    },
    30_000,
    20,
  );
}
