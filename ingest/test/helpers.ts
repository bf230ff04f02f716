import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { applyCqlMigrations, createCqlClient, createKafka, createLogger, topicNames } from '@votestream/runtime';
import { createChallenge, solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import { type IngestConfig, loadIngestConfig, mintToken } from '../src/index.ts';

export const silent = createLogger('ingest-test', 'silent');

/** A unique topic prefix with the pipeline's topics created (auto-creation is off). */
export async function createTopics(prefix: string, votesPartitions = 3): Promise<void> {
  const kafka = createKafka({ clientId: 'ingest-test-admin', brokers: ['127.0.0.1:9092'], logger: silent });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const t = topicNames(prefix);
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: t.votes, numPartitions: votesPartitions, replicationFactor: 1 },
        {
          topic: t.polls,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(prefix: string): Promise<void> {
  const kafka = createKafka({ clientId: 'ingest-test-admin', brokers: ['127.0.0.1:9092'], logger: silent });
  const admin = kafka.admin();
  await admin.connect();
  const t = topicNames(prefix);
  await admin.deleteTopics({ topics: [t.votes, t.polls] }).catch(() => {});
  await admin.disconnect();
}

export const testKeyspace = 'ingest_test';
let migrated: Promise<unknown> | undefined;
/** A private CQL keyspace with the read-model tables (receipts, tallies), migrated once per worker. */
export function migrateTestKeyspace(): Promise<unknown> {
  migrated ??= (async () => {
    const client = createCqlClient({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1' });
    try {
      await applyCqlMigrations({ client, keyspace: testKeyspace, dir: 'migrations/cql' });
    } finally {
      await client.shutdown();
    }
  })();
  return migrated;
}

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
  await createTopics(prefix);
  teardown(() => deleteTopics(prefix));
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

export async function createPoll(baseUrl: string, adminToken: string, body: Record<string, unknown> = {}) {
  const pollId = `p-${randomBytes(6).toString('hex')}`;
  const res = await fetch(`${baseUrl}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      pollId,
      title: 'Who should win?',
      options: [
        { id: 'a', label: 'Alice' },
        { id: 'b', label: 'Bob' },
      ],
      ...body,
    }),
  });
  if (res.status !== 201) throw new Error(`create poll: ${res.status} ${await res.text()}`);
  return (await res.json()) as { pollId: string; status: string };
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

/** Every record in a topic (from the beginning), decoded by `decode`. Polls until `until` holds or the deadline passes. */
export async function readTopic<T>(
  topic: string,
  decode: (b: Buffer) => Promise<T>,
  until: (records: T[]) => boolean,
  deadlineMs = 30_000,
): Promise<T[]> {
  const kafka = createKafka({ clientId: 'ingest-test-reader', brokers: ['127.0.0.1:9092'], logger: silent });
  const consumer = kafka.consumer({ groupId: `ingest-test-${randomUUID()}`, readUncommitted: false });
  const records: T[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        if (message.value) records.push(await decode(message.value));
      },
    });
    const deadline = Date.now() + deadlineMs;
    while (!until(records) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    return records;
  } finally {
    await consumer.disconnect();
  }
}
