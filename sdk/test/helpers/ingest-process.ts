/**
 * The real ingest service as a child process on the local stack, isolated by its own topic prefix, Redis key prefix
 * and CQL keyspace, plus the Kafka reading and token minting the SDK system tests need. Nothing here fakes a service.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { httpOk, repoRoot, type ServiceProcess, startService } from '@votestream/devstack';
import { applyCqlMigrations, createCqlClient, createKafka, createLogger, topicNames } from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import { importPKCS8, SignJWT } from 'jose';

const silent = createLogger('sdk-test', 'silent');
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const stackDir = process.env.VOTESTREAM_STACK_DIR ?? `${repoRoot}/.stack`;
export const sdkTestKeyspace = 'sdk_test';

export const uniqueId = (p: string) => `${p}${randomBytes(5).toString('hex')}`;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Creates the topics ingest reads and writes under `prefix` (auto-creation is off); returns their deletion. */
export async function createTopics(prefix: string): Promise<() => Promise<void>> {
  const admin = createKafka({ clientId: 'sdk-test-admin', brokers, logger: silent }).admin();
  await admin.connect();
  const t = topicNames(prefix);
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: t.votes, numPartitions: 3, replicationFactor: 1 },
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
  return async () => {
    const a = createKafka({ clientId: 'sdk-test-admin', brokers, logger: silent }).admin();
    await a.connect();
    await a.deleteTopics({ topics: [t.votes, t.polls] }).catch(() => undefined);
    await a.disconnect();
  };
}

let migrated: Promise<void> | undefined;
/** The read-model tables ingest's votes/me reads, in a keyspace of the SDK tests' own. */
export function migrateKeyspace(): Promise<void> {
  migrated ??= (async () => {
    const client = createCqlClient({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1' });
    try {
      await applyCqlMigrations({ client, keyspace: sdkTestKeyspace, dir: `${repoRoot}/migrations/cql` });
    } finally {
      await client.shutdown();
    }
  })();
  return migrated;
}

export interface IngestProcess {
  url: string;
  port: number;
  process: ServiceProcess;
}

/** Starts `node --import tsx ingest/src/main.ts` and waits for /readyz. Keys: the stack's dev keys (as in production, ingest only holds the public one). */
export async function startIngestProcess(opts: {
  prefix: string;
  redisPrefix: string;
  name: string;
}): Promise<IngestProcess> {
  const port = await freePort();
  const proc = await startService({
    name: opts.name,
    entry: 'ingest/src/main.ts',
    env: {
      INGEST_PORT: String(port),
      INGEST_METRICS_PORT: String(await freePort()),
      TOPIC_PREFIX: opts.prefix,
      REDIS_PREFIX: opts.redisPrefix,
      CQL_KEYSPACE: sdkTestKeyspace,
      ALTCHA_MAX_NUMBER: '2000', // a few ms of proof of work per vote in tests
      LOG_LEVEL: 'info',
    },
    logFile: `${repoRoot}/test-results/sdk/${opts.name}.log`,
    ready: httpOk(`http://127.0.0.1:${port}/readyz`),
    readyTimeoutMs: 90_000,
  });
  return { url: `http://127.0.0.1:${port}`, port, process: proc };
}

const privateKeyPem = () => readFileSync(`${stackDir}/secrets/dev-jwt-private.pem`, 'utf8');

/** A development token signed with the stack's dev key (EdDSA), as `npm run mint-token` would. */
export async function mintToken(sub: string, opts: { admin?: boolean; ttlS?: number } = {}): Promise<string> {
  const key = await importPKCS8(privateKeyPem(), 'EdDSA');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: opts.admin ? 'votestream:vote votestream:admin' : 'votestream:vote' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(process.env.JWT_ISSUER ?? 'votestream-dev')
    .setAudience(process.env.JWT_AUDIENCE ?? 'votestream')
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.ttlS ?? 3600))
    .sign(key);
}

export async function createPoll(
  url: string,
  extra: Record<string, unknown> = {},
): Promise<{ pollId: string; status: string }> {
  const res = await fetch(`${url}/v1/polls`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${await mintToken('sdk-test-admin', { admin: true })}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      pollId: uniqueId('sdk-p-'),
      title: 'SDK test poll',
      options: [
        { id: 'a', label: 'Alice' },
        { id: 'b', label: 'Bob' },
      ],
      ...extra,
    }),
  });
  if (res.status !== 201) throw new Error(`create poll: ${res.status} ${await res.text()}`);
  return (await res.json()) as { pollId: string; status: string };
}

export async function closePoll(url: string, pollId: string): Promise<void> {
  const res = await fetch(`${url}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await mintToken('sdk-test-admin', { admin: true })}` },
  });
  if (res.status !== 200) throw new Error(`close poll: ${res.status} ${await res.text()}`);
}

/** Every VoteCast in the votes topic, read to the end (the high watermark of every partition at call time). */
export async function readAllVotes(prefix: string): Promise<VoteCast[]> {
  const topic = topicNames(prefix).votes;
  const kafka = createKafka({ clientId: 'sdk-test-reader', brokers, logger: silent });
  const admin = kafka.admin();
  await admin.connect();
  const high = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  await admin.disconnect();
  const serde = await createAvroSerde({ registryUrl, records: ['VoteCast'] });
  const decode = serde.decoder('VoteCast');
  const next = new Map<number, number>();
  const records: VoteCast[] = [];
  const consumer = kafka.consumer({ groupId: uniqueId('sdk-test-'), readUncommitted: false });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (message.value) records.push(await decode(message.value));
        next.set(partition, Number(message.offset) + 1);
      },
    });
    const deadline = Date.now() + 60_000;
    const done = () => [...high].every(([p, h]) => h === 0 || (next.get(p) ?? 0) >= h);
    while (!done()) {
      if (Date.now() > deadline) throw new Error('votes topic not read to the end within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    return records;
  } finally {
    await consumer.disconnect();
  }
}
