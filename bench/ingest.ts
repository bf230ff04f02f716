/**
 * Ingest throughput and cost: durable votes/s, p50/p99 latency and CPU µs per acknowledged vote for one
 * ingest process with every check on (JWT, proof of work, rate limits, Redis guard + idempotency,
 * Avro, idempotent produce with acks=all), against a bare Express endpoint measured in the same run.
 *
 *   node --import tsx bench/ingest.ts [--votes 3000] [--connections 50] [--warmup 1500] [--rounds 1]
 *
 * Fair to both sides:
 * - the same client load: the bare endpoint gets byte for byte the requests ingest gets (same path shape, the same
 *   Authorization, Idempotency-Key, X-Altcha and Content-Type headers, the same body) from the same autocannon
 *   settings, and parses the JSON body with `express.json()` as ingest does;
 * - both are warmed up (`--warmup` requests each, not measured) before anything is measured, so neither pays the
 *   JIT's first compilations in its figure;
 * - CPU is each server process's own (all its threads: utime + stime from /proc/<pid>/stat), so the load generator
 *   (this process), Kafka and Redis sharing the 2 cores are not charged to either; `--rounds N` alternates bare and
 *   ingest N times (B/I/B/I) and prints the ratio per round and of the sums.
 * - ingest runs from its build (`npm run build` first; a build older than the sources is refused), as production
 *   runs it: `node --enable-source-maps ingest/dist/main.js`, not under tsx, whose transform adds work of its own to
 *   every function created per request (esbuild's `__name`), which production does not do.
 * Ingest's votes per produce request (its metrics) are printed too: its Kafka cost per vote depends on them.
 *
 * Needs the local stack. `BENCH_CPU_PROF_DIR=<dir>` profiles the ingest process (and the bare one into `<dir>/bare`); `BENCH_INGEST_ENTRY=<path relative
 * to the repo root>` runs another copy of ingest's `src/main.ts` from its `dist/main.js` next to it (an A/B against
 * an older build, in the same harness).
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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
  latency: { p50: number; p99: number };
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = ((await import('autocannon' as string)) as { default: Autocannon }).default;

const { values } = parseArgs({
  options: {
    votes: { type: 'string', default: '3000' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '1' },
  },
});
const votes = Number(values.votes);
const connections = Number(values.connections);
const warmup = Number(values.warmup);
const rounds = Number(values.rounds);
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

interface VoteRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

async function load(
  name: string,
  child: ServiceProcess,
  url: string,
  amount: number,
  next: () => VoteRequest,
): Promise<Run> {
  const pid = child.pid;
  const cpu0 = cpuMicros(pid);
  const started = performance.now();
  let lastResponse = started;
  const result = await autocannon({
    url,
    connections,
    amount,
    requests: [
      {
        method: 'POST',
        setupRequest: (req: Record<string, unknown>) => ({ ...req, ...next() }),
        onResponse: () => {
          lastResponse = performance.now();
        },
      },
    ],
  });
  const cpu = cpuMicros(pid) - cpu0;
  const ok = result['2xx'];
  return {
    name,
    ok,
    errors: result.non2xx + result.errors,
    // Until the last response: autocannon's `duration` (and its promise) end on its whole-second ticks.
    seconds: (lastResponse - started) / 1000,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerOk: ok > 0 ? cpu / ok : Number.NaN,
  };
}

/** The newest modification time (ms) of the files below `dir`. */
function newestMtimeMs(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newestMtimeMs(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}
const ingestEntry = process.env.BENCH_INGEST_ENTRY ?? 'ingest/src/main.ts';
const ingestSources = join(repoRoot, dirname(ingestEntry));
const builtEntry = join(repoRoot, ingestEntry.replace('/src/', '/dist/').replace(/\.ts$/, '.js'));
const sourcesNewer = (() => {
  try {
    return newestMtimeMs(ingestSources) > statSync(builtEntry).mtimeMs;
  } catch {
    return true;
  }
})();
if (sourcesNewer)
  throw new Error(`${builtEntry} is missing or older than ${ingestSources}: run npm run -s build first`);

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
  // Bare Express: the vote route's path, the JSON body parsed, 202 with a small JSON body. The floor of what any
  // Express vote endpoint costs.
  const barePort = await freePort();
  const bare = await startService({
    name: 'bare-express',
    command: [
      process.execPath,
      ...(process.env.BENCH_CPU_PROF_DIR
        ? [`--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}/bare`, '--cpu-prof']
        : []),
      '--input-type=module',
      '-e',
      `import express from 'express'; const app = express(); app.get('/healthz', (q, s) => s.json({})); app.post('/v1/polls/:pollId/votes', express.json(), (q, s) => s.status(202).json({ ok: true, pollId: q.params.pollId, optionId: q.body.optionId })); app.listen(${barePort}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`,
    ],
    env: {},
    logFile: join(logDir, 'bare-express.log'),
    ready: httpOk(`http://127.0.0.1:${barePort}/healthz`),
  });
  children.push(bare);
  const bareUrl = `http://127.0.0.1:${barePort}`;

  const profile = process.env.BENCH_CPU_PROF_DIR
    ? [`--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`, '--cpu-prof']
    : [];
  const {
    process: ingest,
    url,
    metricsUrl,
  } = await startPipelineService('ingest', {
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
    // From the build, as production runs it (the nodeArgs of the image: source maps on).
    built: { cwd: repoRoot },
    entry: ingestEntry,
    execArgv: profile,
  });
  children.push(ingest);
  const adminToken = await mintToken({ privateKeyPem, sub: 'bench-admin', admin: true });
  const pollId = `bench-${randomBytes(4).toString('hex')}`;
  await createPoll(url, adminToken, { pollId, title: 'bench' });
  // One voter per vote (each votes once): the warm-up's and every round's.
  const ballotsNeeded = warmup + rounds * votes;
  process.stderr.write(`preparing ${ballotsNeeded} voters (tokens + solved challenges)...\n`);
  const ballots: { token: string; altcha: string }[] = [];
  for (let i = 0; i < ballotsNeeded; i++) {
    const token = await mintToken({ privateKeyPem, sub: `bench-voter-${i}` });
    const challenge = await (
      await fetch(`${url}/v1/challenge?pollId=${pollId}`, { headers: { authorization: `Bearer ${token}` } })
    ).json();
    const solution = await solveChallenge({ challenge, deriveKey });
    ballots.push({ token, altcha: Buffer.from(JSON.stringify({ challenge, solution })).toString('base64') });
  }
  /** The vote requests of ballots [from, from + n), in order; the bare endpoint gets the same ones. */
  const requests = (from: number) => {
    let i = from;
    return (): VoteRequest => {
      const b = ballots[i] as { token: string; altcha: string };
      i++;
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
    };
  };
  if (warmup > 0) {
    process.stderr.write(`warming up both servers (${warmup} requests each)...\n`);
    await load('warm-up bare', bare, bareUrl, warmup, requests(0));
    const w = await load('warm-up ingest', ingest, url, warmup, requests(0));
    if (w.ok !== warmup) throw new Error(`ingest's warm-up: ${w.ok} of ${warmup} votes accepted`);
  }
  const runs: Run[] = [];
  const ratios: number[] = [];
  let bareCpu = 0;
  let bareOk = 0;
  let ingestCpu = 0;
  let ingestOk = 0;
  for (let r = 0; r < rounds; r++) {
    const from = warmup + r * votes;
    const b = await load(`bare express #${r + 1}`, bare, bareUrl, votes, requests(from));
    const v = await load(`ingest (all checks) #${r + 1}`, ingest, url, votes, requests(from));
    runs.push(b, v);
    ratios.push(v.cpuUsPerOk / b.cpuUsPerOk);
    bareCpu += b.cpuUsPerOk * b.ok;
    bareOk += b.ok;
    ingestCpu += v.cpuUsPerOk * v.ok;
    ingestOk += v.ok;
  }
  const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
  const metric = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);

  const rows = runs.map((r) => ({
    run: r.name,
    'ok (2xx)': r.ok,
    'non-2xx/errors': r.errors,
    'ok/s': Math.round(r.ok / r.seconds),
    'p50 ms': r.p50,
    'p99 ms': r.p99,
    'CPU µs/ok': Math.round(r.cpuUsPerOk),
  }));
  console.table(rows);
  const ingestPerOk = ingestCpu / ingestOk;
  console.log(`ingest/bare CPU-per-request ratio per round: ${ratios.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(
    `ingest/bare CPU-per-request ratio (sums of ${rounds} round(s)): ${Math.round(ingestPerOk)} / ${Math.round(bareCpu / bareOk)} µs = ${(ingestPerOk / (bareCpu / bareOk)).toFixed(2)}`,
  );
  const batches = metric('ingest_produce_batch_messages_count');
  console.log(
    `ingest: ${batches} batches, ${(metric('ingest_produce_batch_messages_sum') / batches).toFixed(1)} votes per batch`,
  );
  console.log(
    `cores for 250k acknowledged votes/s at ${Math.round(ingestPerOk)} µs/vote: ${((250_000 * ingestPerOk) / 1e6).toFixed(1)} (targets: >= 5000 votes/s per process, <= 200 µs/vote)`,
  );
} finally {
  // SIGTERM, and wait for each to exit (a CPU profile is written on the way out).
  await Promise.all(children.map((c) => c.stop()));
  await deleteTopics();
}
