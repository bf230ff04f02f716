/**
 * Ingest throughput and cost: durable votes/s, p50/p99 latency and CPU µs per acknowledged vote for one
 * ingest process with every check on (JWT, proof of work, rate limits, Redis guard + idempotency,
 * Avro, idempotent produce with acks=all), against a bare Express endpoint measured in the same run.
 *
 *   node --import tsx bench/ingest.ts [--votes 3000] [--connections 50]
 *
 * Needs the local stack. Both servers run as child processes; their CPU time is read from /proc/<pid>/stat,
 * so it holds even when the broker and the load generator share the cores.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintToken } from '@votestream/ingest';
import { createKafka, createLogger, topicNames } from '@votestream/runtime';
import { solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';

/** The part of autocannon's API used here (it ships no type declarations). */
interface AutocannonResult {
  '2xx': number;
  non2xx: number;
  errors: number;
  duration: number;
  latency: { p50: number; p99: number };
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = ((await import('autocannon' as string)) as { default: Autocannon }).default;

const { values } = parseArgs({
  options: { votes: { type: 'string', default: '3000' }, connections: { type: 'string', default: '50' } },
});
const votes = Number(values.votes);
const connections = Number(values.connections);
const clockTicksPerS = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
/** utime + stime of a process, in µs (Linux). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) / clockTicksPerS) * 1e6;
}
async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (
      await fetch(url).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      return;
    await sleep(250);
  }
  throw new Error(`${url} never became ready`);
}

interface Run {
  name: string;
  ok: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  cpuUsPerOk: number;
}

async function load(
  name: string,
  child: ChildProcess,
  url: string,
  next: () => { path: string; headers: Record<string, string>; body: string },
): Promise<Run> {
  const pid = child.pid as number;
  const cpu0 = cpuMicros(pid);
  const result = await autocannon({
    url,
    connections,
    amount: votes,
    requests: [
      {
        method: 'POST',
        setupRequest: (req: Record<string, unknown>) => ({ ...req, ...next() }),
      },
    ],
  });
  const cpu = cpuMicros(pid) - cpu0;
  const ok = result['2xx'];
  return {
    name,
    ok,
    errors: result.non2xx + result.errors,
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerOk: ok > 0 ? cpu / ok : Number.NaN,
  };
}

const logger = createLogger('bench', 'warn');
const prefix = `bench-${randomBytes(4).toString('hex')}.`;
const kafka = createKafka({ clientId: 'bench', brokers: ['127.0.0.1:9092'], logger });
const admin = kafka.admin();
await admin.connect();
const t = topicNames(prefix);
await admin.createTopics({
  waitForLeaders: true,
  topics: [
    { topic: t.votes, numPartitions: 6, replicationFactor: 1 },
    {
      topic: t.polls,
      numPartitions: 1,
      replicationFactor: 1,
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
    },
  ],
});
const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
writeFileSync(join(dir, 'jwt.pem'), publicKey.export({ type: 'spki', format: 'pem' }).toString());
writeFileSync(join(dir, 'altcha.key'), randomBytes(32).toString('hex'));
const children: ChildProcess[] = [];
const stopAll = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
};
process.on('exit', stopAll);

try {
  // Bare Express: JSON body in, 202 out. The floor of what any Express vote endpoint costs.
  const barePort = await freePort();
  const bare = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import express from 'express'; const app = express(); app.get('/healthz', (q, s) => s.json({})); app.post('/v', express.json(), (q, s) => s.status(202).json({ ok: true, optionId: q.body.optionId })); app.listen(${barePort}, '127.0.0.1');`,
    ],
    { stdio: 'inherit' },
  );
  children.push(bare);
  await waitReady(`http://127.0.0.1:${barePort}/healthz`);
  const bareRun = await load('bare express', bare, `http://127.0.0.1:${barePort}`, () => ({
    path: '/v',
    headers: { 'content-type': 'application/json' },
    body: '{"optionId":"a"}',
  }));

  const port = await freePort();
  const profile = process.env.BENCH_CPU_PROF_DIR
    ? [`--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`, '--cpu-prof']
    : [];
  const ingest = spawn(process.execPath, [...profile, '--import', 'tsx', 'ingest/src/main.ts'], {
    env: {
      ...process.env,
      INGEST_PORT: String(port),
      TOPIC_PREFIX: prefix,
      REDIS_PREFIX: `${prefix}:`,
      JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pem'),
      ALTCHA_HMAC_KEY_FILE: join(dir, 'altcha.key'),
      // Verification costs the same at any difficulty; a small one keeps solving the challenges cheap here.
      ALTCHA_MAX_NUMBER: '10',
      // Every challenge comes from one network here: keep adaptive difficulty from raising it during preparation.
      CHALLENGE_NETWORK_BASELINE: '100000000',
      INGEST_METRICS_PORT: '0',
      // All load comes from 127.0.0.1: one /24. The per-network cap would otherwise be what is measured.
      RATE_NETWORK_POINTS: '10000000',
      LOG_LEVEL: 'warn',
    },
    stdio: 'inherit',
  });
  children.push(ingest);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/readyz`);
  const adminToken = await mintToken({ privateKeyPem, sub: 'bench-admin', admin: true });
  const pollId = `bench-${randomBytes(4).toString('hex')}`;
  const created = await fetch(`${url}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      pollId,
      title: 'bench',
      options: [
        { id: 'a', label: 'A' },
        { id: 'b', label: 'B' },
      ],
    }),
  });
  if (created.status !== 201) throw new Error(`poll: ${created.status}`);
  process.stderr.write(`preparing ${votes} voters (tokens + solved challenges)...\n`);
  const ballots: { token: string; altcha: string }[] = [];
  for (let i = 0; i < votes; i++) {
    const token = await mintToken({ privateKeyPem, sub: `bench-voter-${i}` });
    const challenge = await (
      await fetch(`${url}/v1/challenge?pollId=${pollId}`, { headers: { authorization: `Bearer ${token}` } })
    ).json();
    const solution = await solveChallenge({ challenge, deriveKey });
    ballots.push({ token, altcha: Buffer.from(JSON.stringify({ challenge, solution })).toString('base64') });
  }
  let i = 0;
  const ingestRun = await load('ingest (all checks)', ingest, url, () => {
    const b = ballots[i++ % ballots.length] as { token: string; altcha: string };
    return {
      path: `/v1/polls/${pollId}/votes`,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${b.token}`,
        'idempotency-key': randomUUID(),
        'x-altcha': b.altcha,
      },
      body: `{"optionId":"${i % 2 === 0 ? 'a' : 'b'}"}`,
    };
  });

  const rows = [bareRun, ingestRun].map((r) => ({
    run: r.name,
    'ok (2xx)': r.ok,
    'non-2xx/errors': r.errors,
    'ok/s': Math.round(r.ok / r.seconds),
    'p50 ms': r.p50,
    'p99 ms': r.p99,
    'CPU µs/ok': Math.round(r.cpuUsPerOk),
  }));
  console.table(rows);
  const perSecIngest = ingestRun.ok / ingestRun.seconds;
  const perSecBare = bareRun.ok / bareRun.seconds;
  console.log(`ingest/bare throughput ratio: ${(perSecIngest / perSecBare).toFixed(3)}`);
  console.log(`ingest/bare CPU-per-request ratio: ${(ingestRun.cpuUsPerOk / bareRun.cpuUsPerOk).toFixed(2)}`);
  console.log(
    `cores for 250k acknowledged votes/s at ${Math.round(ingestRun.cpuUsPerOk)} µs/vote: ${((250_000 * ingestRun.cpuUsPerOk) / 1e6).toFixed(1)} (targets: >= 5000 votes/s per process, <= 200 µs/vote)`,
  );
} finally {
  stopAll();
  await sleep(500);
  await admin.deleteTopics({ topics: [t.votes, t.polls] }).catch(() => {});
  await admin.disconnect();
}
