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
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  createPoll,
  createTopics,
  freePort,
  httpOk,
  repoRoot,
  type ServiceProcess,
  startPipelineService,
  startService,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
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

/** utime + stime of a process, in µs (Linux). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) / clockTicksPerS) * 1e6;
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
  child: ServiceProcess,
  url: string,
  next: () => { path: string; headers: Record<string, string>; body: string },
): Promise<Run> {
  const pid = child.pid;
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

const prefix = `bench-${randomBytes(4).toString('hex')}.`;
const deleteTopics = await createTopics(prefix, { votePartitions: 6, only: ['votes', 'polls'] });
const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
writeFileSync(join(dir, 'jwt.pem'), publicKey.export({ type: 'spki', format: 'pem' }).toString());
writeFileSync(join(dir, 'altcha.key'), randomBytes(32).toString('hex'));
const children: ServiceProcess[] = [];
const logDir = join(repoRoot, `test-results/bench-ingest-${prefix.slice(0, -1)}`);

try {
  // Bare Express: JSON body in, 202 out. The floor of what any Express vote endpoint costs.
  const barePort = await freePort();
  const bare = await startService({
    name: 'bare-express',
    command: [
      process.execPath,
      '--input-type=module',
      '-e',
      `import express from 'express'; const app = express(); app.get('/healthz', (q, s) => s.json({})); app.post('/v', express.json(), (q, s) => s.status(202).json({ ok: true, optionId: q.body.optionId })); app.listen(${barePort}, '127.0.0.1');`,
    ],
    env: {},
    logFile: join(logDir, 'bare-express.log'),
    ready: httpOk(`http://127.0.0.1:${barePort}/healthz`),
  });
  children.push(bare);
  const bareRun = await load('bare express', bare, `http://127.0.0.1:${barePort}`, () => ({
    path: '/v',
    headers: { 'content-type': 'application/json' },
    body: '{"optionId":"a"}',
  }));

  const profile = process.env.BENCH_CPU_PROF_DIR
    ? [`--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`, '--cpu-prof']
    : [];
  const { process: ingest, url } = await startPipelineService('ingest', {
    env: {
      TOPIC_PREFIX: prefix,
      REDIS_PREFIX: `${prefix}:`,
      JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pem'),
      ALTCHA_HMAC_KEY_FILE: join(dir, 'altcha.key'),
      // Verification costs the same at any difficulty; a small one keeps solving the challenges cheap here.
      ALTCHA_MAX_NUMBER: '10',
      // Every challenge comes from one network here: keep adaptive difficulty from raising it during preparation.
      CHALLENGE_NETWORK_BASELINE: '100000000',
      // All load comes from 127.0.0.1: one /24. The per-network cap would otherwise be what is measured.
      RATE_NETWORK_POINTS: '10000000',
      LOG_LEVEL: 'warn',
    },
    logDir,
    execArgv: profile,
  });
  children.push(ingest);
  const adminToken = await mintToken({ privateKeyPem, sub: 'bench-admin', admin: true });
  const pollId = `bench-${randomBytes(4).toString('hex')}`;
  await createPoll(url, adminToken, { pollId, title: 'bench' });
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
  // SIGTERM, and wait for each to exit (a CPU profile is written on the way out).
  await Promise.all(children.map((c) => c.stop()));
  await deleteTopics();
}
