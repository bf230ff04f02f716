// Vote-to-screen latency: time from a vote's 202 to the first MQTT totals message that includes it, at a
// steady load, through the real pipeline (ingest -> Kafka -> stream -> Kafka -> projections -> MQTT), each
// service its own process on the local stack. Baseline, same run: the MQTT broker hop alone (publish ->
// subscriber) with the same message size. Target (issue 14): p99 under 500 ms at 1,000 votes/s.
//
//   node --import tsx bench/vote-to-screen.ts [votesPerSecond=200] [seconds=20] [runs=steady,1000,kill]
//
// Runs, each on a fresh topic prefix with its own processes, one after the other:
// - steady: `votesPerSecond`, one stream process;
// - 1000: 1,000 votes/s, one stream process (on the shared 2-core machine the load generator, the services
//   and the stack share the cores: the rate reached is printed beside the rate asked for);
// - kill: `votesPerSecond`, two stream processes; one is killed (-9) in the middle of the measured window and
//   not restarted (its tasks move to the other after STREAM_SESSION_TIMEOUT_MS).
// The load generator keeps at most 256 requests open; when they are all waiting it falls behind the rate asked
// ("sent at" is printed beside it).
//
// "Includes": totals are counts, not vote ids, so the k-th vote to get its 202 is taken as included by the
// first message whose total is at least k. Votes are processed in nearly the order they were acknowledged, so
// this is accurate to within the few votes in flight at once; it never reports a message before its count.
// The proof of work is off for this run (CHALLENGE_POLICY=off): its cost is on the voter's device, before the
// vote is sent, and is not part of vote-to-screen time.
//
// Per-hop breakdown, from timestamps carried by the records themselves (all clocks are this machine's): the
// bench reads `votes` (each vote's record timestamp: when ingest produced it), `vote-decisions` read_committed
// (record timestamp: when stage 1 produced the decision in its transaction; receive time: when that
// transaction's commit became visible) and `tallies` read_committed (record timestamp: when stage 2 produced the
// global tally; receive time: when it became visible), and MQTT. Votes are ordered by when their decision became
// visible; the k-th is in the first tally (and MQTT message) whose total is >= k. The bench's own read_committed
// consumers fetch with a 10 ms wait: "visible" is at most that late.
//
// Where the cores go (Linux only: /proc): for each run, the CPU used during the measured window (from the first
// vote sent until MQTT showed every accepted vote) by every process involved: the fleet's ingest, stream and
// projections processes (utime + stime from /proc/<pid>/stat; a killed one's until just before its kill), the
// stack's services (pids from the stack's pid files, .stack/run/<service>.pid, as compose/native/stack writes them),
// this bench process (process.cpuUsage(): load generator, MQTT subscriber, trace consumers), and the machine's busy
// time from /proc/stat, so "other" (busy - listed) is what else ran on the shared cores (the largest such processes
// are named). Each as cores (CPU-seconds / wall seconds) and CPU-µs per accepted vote, beside the same processes'
// cores over 5 s with no votes just before the window (fixed costs, and the shared stack's other clients: the stack's
// services serve everyone on the machine). The fleet inherits this process's nice level (run under `nice -n 19`);
// the stack's services do not.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  createPoll,
  devPrivateKeyPem,
  dropKeyspace,
  eventually,
  type Fleet,
  isolatedEnv,
  migrateKeyspace,
  mqttPublisherPassword,
  stack,
  stackDir,
  stackKafka,
  startFleet,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import { pipelineTopicSpecs, topicNames } from '@votestream/runtime';
import { createAvroSerde, type TallyUpdate } from '@votestream/schemas';
import type { Consumer } from 'kafkajs';
import mqtt from 'mqtt';

const rate = Number(process.argv[2] ?? 200);
const seconds = Number(process.argv[3] ?? 20);
const runs = (process.argv[4] ?? 'steady,1000,kill').split(',');
if (
  !(rate > 0 && rate <= 5000 && seconds >= 10 && seconds <= 300) ||
  runs.some((r) => !['steady', '1000', 'kill'].includes(r))
)
  throw new Error('usage: [votesPerSecond<=5000] [seconds 10..300] [runs=steady,1000,kill]');

/** Vote requests open at once at most (the load generator's sockets). */
const requestsInFlightMax = 256;
const runId = `bench${Date.now().toString(36)}`;
const privateKeyPem = devPrivateKeyPem();
/** Wall-clock ms with sub-ms resolution: comparable with Kafka record timestamps set by the other processes. */
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const fmt = (xs: number[]) =>
  xs.length === 0
    ? '(no samples)'
    : `p50 ${pct(xs, 50).toFixed(1)} ms  p99 ${pct(xs, 99).toFixed(1)} ms  max ${Math.max(...xs).toFixed(1)} ms  (n=${xs.length})`;

// Baseline: the broker hop alone.
async function brokerBaseline(): Promise<number[]> {
  const topic = `votestream/polls/${runId}-baseline/totals`;
  const sub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { reconnectPeriod: 0 });
  const pub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', {
    username: 'projections',
    password: mqttPublisherPassword(),
    reconnectPeriod: 0,
  });
  const sent = new Map<number, number>();
  const lat: number[] = [];
  sub.on('message', (_t, payload) => {
    if (payload.length === 0) return;
    const { version } = JSON.parse(payload.toString()) as { version: number };
    const t0 = sent.get(version);
    if (t0 !== undefined) lat.push(performance.now() - t0);
  });
  await sub.subscribeAsync(topic, { qos: 1 });
  const body = {
    pollId: runId,
    totals: { a: 123456, b: 234567, c: 345678 },
    total: 703701,
    asOf: new Date().toISOString(),
    final: false,
  };
  for (let v = 1; v <= 200; v++) {
    sent.set(v, performance.now());
    await pub.publishAsync(topic, JSON.stringify({ ...body, version: v }), { qos: 1 });
    await sleep(5);
  }
  await eventually('every baseline message received', async () => (lat.length === 200 ? true : undefined), 30_000, 20);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
  await sub.endAsync();
  await pub.endAsync();
  return lat;
}

/** What the bench's own consumers saw of the measured poll: record timestamps and receive times. */
interface Trace {
  /** voter key -> record timestamp of the vote (ingest's produce). */
  voteTs: Map<string, number>;
  /** voter key -> [record timestamp of the decision (stage 1's produce), when it became visible committed]. */
  decision: Map<string, [number, number]>;
  /** The poll's global tallies in the order they became visible: record timestamp, receive time, total. */
  tallies: { ts: number; seen: number; total: number }[];
  stop(): Promise<void>;
}

async function trace(prefix: string, pollId: string): Promise<Trace> {
  const topics = topicNames(prefix);
  const kafka = stackKafka(`${runId}-trace`);
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, records: ['TallyUpdate'] });
  const decodeTally = serde.decoder('TallyUpdate');
  const mine = `${pollId}/`;
  const t: Trace = { voteTs: new Map(), decision: new Map(), tallies: [], stop: async () => {} };
  const consumers: Consumer[] = [];
  const consume = async (
    topic: string,
    onMessage: (key: string, ts: number, seen: number, value: Buffer | null) => void,
  ) => {
    const c = kafka.consumer({
      groupId: `${prefix}trace-${topic}`,
      readUncommitted: false,
      maxWaitTimeInMs: 10,
      allowAutoTopicCreation: false,
    });
    consumers.push(c);
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    let joined = false;
    c.on(c.events.GROUP_JOIN, () => {
      joined = true;
    });
    await c.run({
      eachBatch: async ({ batch }) => {
        const seen = now();
        for (const m of batch.messages) {
          const key = m.key?.toString() ?? '';
          if (key.startsWith(mine) || key === pollId) onMessage(key, Number(m.timestamp), seen, m.value);
        }
      },
    });
    await eventually(`trace consumer of ${topic} joined`, async () => (joined ? true : undefined), 60_000, 50);
  };
  await consume(topics.votes, (key, ts) => t.voteTs.set(key, ts));
  await consume(topics.voteDecisions, (key, ts, seen) => t.decision.set(key, [ts, seen]));
  await consume(topics.tallies, (_key, ts, seen, value) => {
    if (value === null) return;
    void decodeTally(value).then((u: TallyUpdate) => {
      if (u.pollId === pollId) t.tallies.push({ ts, seen, total: u.total });
    });
  });
  t.stop = async () => {
    for (const c of consumers) await c.disconnect();
  };
  return t;
}

/**
 * A histogram of the services' own /metrics, per instance of `service` (a killed one is missing): cumulative
 * bucket counts by upper bound (s), for the series whose labels contain `match`. Two scrapes give the run's share.
 */
type Hist = Map<number, number>;
async function scrapeHist(fleet: Fleet, service: 'stream' | 'projections', name: string, match: string) {
  const out = new Map<string, Hist>();
  for (const m of fleet.members.filter((x) => x.service === service)) {
    const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`).catch(() => undefined))?.text();
    if (text === undefined) continue; // a killed process
    const hist: Hist = new Map();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}_bucket{`) || !line.includes(match)) continue;
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      hist.set(bound, (hist.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    out.set(m.name, hist);
  }
  return out;
}
/** p50 and p99 of what the instances alive at both scrapes observed in between ("<=" the bucket's bound, ms). */
function histDelta(before: Map<string, Hist>, after: Map<string, Hist>): string {
  const delta: Hist = new Map();
  for (const [member, a] of after) {
    const b = before.get(member);
    if (!b) continue;
    for (const [bound, n] of a) delta.set(bound, (delta.get(bound) ?? 0) + n - (b.get(bound) ?? 0));
  }
  const bounds = [...delta.keys()].sort((x, y) => x - y);
  const counts = bounds.map((x) => delta.get(x) ?? 0);
  const n = counts[counts.length - 1] ?? 0;
  if (n <= 0) return '(no samples)';
  const q = (p: number) => {
    const b = bounds[counts.findIndex((c) => c >= p * n)] ?? Number.POSITIVE_INFINITY;
    return Number.isFinite(b) ? `<= ${b * 1000} ms` : `> ${(bounds[bounds.length - 2] ?? 0) * 1000} ms`;
  };
  return `p50 ${q(0.5)}  p99 ${q(0.99)}  (n=${n}, histogram buckets)`;
}
const serviceHists = [
  [
    'stream dedupe transaction (send outputs + changelog + offsets + commit)',
    'stream',
    'stream_commit_duration_seconds',
    'stage="dedupe"',
  ],
  ['stream tally transaction', 'stream', 'stream_commit_duration_seconds', 'stage="tally"'],
  [
    'projections: tally asOf -> PUBACK of its live message',
    'projections',
    'projections_live_publish_delay_seconds',
    '',
  ],
] as const;
const scrapeAll = (fleet: Fleet) =>
  Promise.all(serviceHists.map(([, service, name, match]) => scrapeHist(fleet, service, name, match)));

// ---------------------------------------------------------------------------------------------------- CPU (/proc)

/** Whether the CPU tables can be printed: they read /proc (Linux). */
const procAvailable = existsSync('/proc/stat') && existsSync('/proc/self/stat');
if (!procAvailable)
  console.log('CPU tables skipped: they read /proc/<pid>/stat and /proc/stat, which exist only on Linux');
/** Clock ticks per second of /proc's CPU times (USER_HZ; 100 on nearly every Linux). */
const clockTicksPerS = (() => {
  if (!procAvailable) return 100;
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();
/** The stack's services whose CPU is listed, by the name of their pid file under `.stack/run/`. */
const stackServices = ['kafka', 'registry', 'cassandra', 'redis', 'mosquitto'] as const;
/** The idle baseline: the same table over this long with no votes sent, just before the measured window. */
const idleWindowMs = 5000;

interface ProcCpu {
  /** utime + stime of all its threads so far, s. */
  cpuS: number;
  /** cutime + cstime: the CPU of its children that have exited and been waited for, s. */
  childrenS: number;
  ppid: number;
  comm: string;
}
/** A process's CPU so far (/proc/<pid>/stat); undefined once it is gone. */
function procCpu(pid: number): ProcCpu | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ...": comm may hold spaces and parentheses, so split after its last ')'.
  const close = stat.lastIndexOf(')');
  const f = stat
    .slice(close + 2)
    .split(' ')
    .map(Number); // f[0] is field 3 (state) of proc(5)
  return {
    cpuS: ((f[11] ?? 0) + (f[12] ?? 0)) / clockTicksPerS, // fields 14, 15: utime, stime
    childrenS: ((f[13] ?? 0) + (f[14] ?? 0)) / clockTicksPerS, // fields 16, 17: cutime, cstime
    ppid: f[1] ?? 0, // field 4
    comm: stat.slice(stat.indexOf('(') + 1, close),
  };
}
/** Every process on the machine, by pid (for "other": what else ran). */
function allProcs(): Map<number, ProcCpu> {
  const out = new Map<number, ProcCpu>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = procCpu(Number(entry));
    if (p) out.set(Number(entry), p);
  }
  return out;
}
/**
 * The machine's CPU seconds so far, all cores, from /proc/stat's "cpu" line: busy (user, nice, system, irq,
 * softirq, steal; guest time is inside user) and, of it, irq + softirq (kernel work such as loopback packets; with
 * tick-based accounting and no CONFIG_IRQ_TIME_ACCOUNTING it is also in the stime of the process it interrupted).
 */
function machineCpuS(): { busyS: number; irqS: number } {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (
    readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
  )
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return {
    busyS: (user + nice + system + irq + softirq + steal) / clockTicksPerS,
    irqS: (irq + softirq) / clockTicksPerS,
  };
}
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** A process whose CPU is listed: a fleet member or a stack service (pid undefined: no readable pid file). */
interface Watched {
  name: string;
  pid: number | undefined;
}
function stackWatched(): Watched[] {
  return stackServices.map((name) => {
    try {
      const pid = Number(readFileSync(join(stackDir, 'run', `${name}.pid`), 'utf8').trim());
      return { name, pid: pid > 0 ? pid : undefined };
    } catch {
      return { name, pid: undefined };
    }
  });
}

/** CPU seconds over one window (undefined: not measurable, e.g. no pid file). */
interface CpuFigures {
  wallS: number;
  loadAtStart: string;
  loadAtEnd: string;
  /** Listed processes in `watched` order, then this bench process. */
  rows: { name: string; pid: string; cpuS: number | undefined }[];
  busyS: number;
  irqS: number;
  /** The unlisted processes alive at the end with the most CPU in the window (own + reaped children). */
  others: { pid: number; comm: string; cpuS: number }[];
}

/**
 * A window over which CPU is counted: `beforeKill` samples a process just before it is killed (its CPU counts
 * until then), `end` samples everything again.
 */
function cpuWindow(watched: Watched[]) {
  const wall0 = performance.now();
  const self0 = process.cpuUsage();
  const machine0 = machineCpuS();
  const loadAtStart = loadAverage();
  const procs0 = allProcs();
  const atKill = new Map<number, number>(); // pid -> CPU s just before its kill
  return {
    beforeKill(pid: number) {
      atKill.set(pid, procCpu(pid)?.cpuS ?? Number.NaN);
    },
    end(): CpuFigures {
      const procs1 = allProcs();
      const machine1 = machineCpuS();
      const self = process.cpuUsage(self0);
      const wallS = (performance.now() - wall0) / 1000;
      const rows: CpuFigures['rows'] = watched.map((w) => {
        if (w.pid === undefined) return { name: w.name, pid: '(no pid file)', cpuS: undefined };
        const a = procs0.get(w.pid)?.cpuS;
        const b = atKill.has(w.pid) ? atKill.get(w.pid) : procs1.get(w.pid)?.cpuS;
        return {
          name: atKill.has(w.pid) ? `${w.name} (until its kill)` : w.name,
          pid: String(w.pid),
          cpuS: a === undefined || b === undefined || Number.isNaN(b) ? undefined : b - a,
        };
      });
      rows.push({ name: 'bench (this process)', pid: String(process.pid), cpuS: (self.user + self.system) / 1e6 });
      // What else ran: a process that exited in the window is in its parent's children time once waited for (all
      // of its life: what it had used before the window is taken off again).
      const before = new Map<number, number>(); // parent pid -> CPU s before the window of its children gone since
      for (const [pid, p] of procs0)
        if (!procs1.has(pid)) before.set(p.ppid, (before.get(p.ppid) ?? 0) + p.cpuS + p.childrenS);
      const listedPids = new Set([...watched.map((w) => w.pid), process.pid]);
      const others = [...procs1]
        .filter(([pid]) => !listedPids.has(pid))
        .map(([pid, p]) => {
          const p0 = procs0.get(pid);
          const childrenS = Math.max(0, p.childrenS - (p0?.childrenS ?? 0) - (before.get(pid) ?? 0));
          return { pid, comm: p.comm, cpuS: p.cpuS - (p0?.cpuS ?? 0) + childrenS };
        })
        .sort((x, y) => y.cpuS - x.cpuS)
        .slice(0, 3)
        .filter((o) => o.cpuS > 0);
      return {
        wallS,
        loadAtStart,
        loadAtEnd: loadAverage(),
        rows,
        busyS: machine1.busyS - machine0.busyS,
        irqS: machine1.irqS - machine0.irqS,
        others,
      };
    },
  };
}

/** The CPU table of one run: cores and CPU-µs per accepted vote in the measured window, idle cores beside. */
function printCpu(m: CpuFigures, idle: CpuFigures, accepted: number) {
  const listed = (f: CpuFigures) => f.rows.reduce((n, r) => n + (r.cpuS ?? 0), 0);
  const cores = (s: number | undefined, f: CpuFigures) => (s === undefined ? '-' : (s / f.wallS).toFixed(2));
  const line = (name: string, pid: string, s: number | undefined, idleS: number | undefined) =>
    `    ${name.padEnd(38)} ${pid.padStart(13)} ${(s === undefined ? '-' : s.toFixed(2)).padStart(8)} ` +
    `${cores(s, m).padStart(6)} ${(s === undefined || accepted === 0 ? '-' : ((s * 1e6) / accepted).toFixed(0)).padStart(11)} ` +
    `${cores(idleS, idle).padStart(10)}`;
  console.log(
    `  CPU in the measured window (${m.wallS.toFixed(1)} s wall: first vote sent -> every accepted vote on MQTT; ` +
      `${availableParallelism()} cores; load average 1/5/15 min ${m.loadAtStart} at its start, ${m.loadAtEnd} at its end). ` +
      `Baseline: cores over ${idleWindowMs / 1000} s idle just before it (same processes, no votes):`,
  );
  console.log(
    `    ${'process'.padEnd(38)} ${'pid'.padStart(13)} ${'CPU s'.padStart(8)} ${'cores'.padStart(6)} ` +
      `${'CPU-µs/vote'.padStart(11)} ${'idle cores'.padStart(10)}`,
  );
  m.rows.forEach((r, i) => {
    console.log(line(r.name, r.pid, r.cpuS, idle.rows[i]?.cpuS));
  });
  console.log(line('= listed', '', listed(m), listed(idle)));
  console.log(line('other (machine busy - listed)', '', m.busyS - listed(m), idle.busyS - listed(idle)));
  console.log(line('machine busy (/proc/stat)', '', m.busyS, idle.busyS));
  console.log(line('  of it kernel irq + softirq (*)', '', m.irqS, idle.irqS));
  if (m.others.length > 0)
    console.log(
      `    largest other processes (own + exited children's CPU): ` +
        m.others.map((o) => `${o.comm} (pid ${o.pid}) ${cores(o.cpuS, m)} cores`).join(', '),
    );
  console.log(
    '    (*) packet and interrupt work; unless the kernel accounts irq time apart (CONFIG_IRQ_TIME_ACCOUNTING), ' +
      'it is also in the stime of the processes it interrupted',
  );
  const top = m.rows.reduce((a, b) => ((b.cpuS ?? 0) > (a.cpuS ?? 0) ? b : a));
  const otherS = m.busyS - listed(m);
  console.log(
    `  largest consumer: ${top.name} (${cores(top.cpuS, m)} cores, ` +
      `${((100 * (top.cpuS ?? 0)) / (m.busyS || 1)).toFixed(0)}% of the machine's busy time)` +
      (otherS > (top.cpuS ?? 0) ? `; unlisted processes together used more: ${cores(otherS, m)} cores` : ''),
  );
}

interface RunResult {
  name: string;
  asked: number;
  reached: number;
  lat202: number[];
}

async function runOnce(name: string, votesPerSecond: number, streamInstances: 1 | 2, kill: boolean) {
  const id = `${runId}${name}`;
  const keyspace = `ks_${id}`;
  const prefix = `${id}.`;
  await migrateKeyspace(keyspace);
  const fleet = await startFleet({
    prefix,
    instances: { ingest: 1, stream: streamInstances, projections: 1 },
    logDir: join(stackDir, 'logs/bench-vote-to-screen', id),
    env: {
      ...isolatedEnv(id),
      CHALLENGE_POLICY: 'off',
      RATE_NETWORK_POINTS: '100000',
      LOG_LEVEL: 'warn',
    },
  });
  const api = fleet.apiUrls[0] as string;
  const pollId = `poll-${id}`;
  let tr: Trace | undefined;
  try {
    // Every stream task running (with two processes: after their rebalance), so the window measures no start-up.
    const partitions = (topic: string) => pipelineTopicSpecs('').find((x) => x.topic === topic)?.partitions ?? 0;
    await eventually(
      'every stream task running',
      async () => {
        let dedupe = 0;
        let tally = 0;
        for (const m of fleet.members.filter((x) => x.service === 'stream')) {
          const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`)).text();
          const running = (stage: string) =>
            Number(new RegExp(`^stream_tasks_active\\{[^}]*stage="${stage}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
          dedupe += running('dedupe');
          tally += running('tally');
        }
        return dedupe === partitions('votes') && tally === partitions('tally-partials') ? true : undefined;
      },
      120_000,
      250,
    );
    const admin = await mintToken({ privateKeyPem, sub: 'bench-admin', admin: true });
    await createPoll(api, admin, { pollId, title: 'bench' });

    // Warm-up, not measured: 5 s of the same load on its own poll (JIT, first transactions, fetch sessions).
    const warmPoll = `${pollId}-warm`;
    await createPoll(api, admin, { pollId: warmPoll, title: 'warm-up' });
    const warmVotes: Promise<number>[] = [];
    const warmStart = performance.now();
    for (let i = 0; i < votesPerSecond * 5; i++) {
      const wait = warmStart + (i * 1000) / votesPerSecond - performance.now();
      if (wait > 0) await sleep(wait);
      const token = await mintToken({ privateKeyPem, sub: `${id}-warm${i}` });
      warmVotes.push(
        fetch(`${api}/v1/polls/${warmPoll}/votes`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'idempotency-key': randomUUID(),
          },
          body: JSON.stringify({ optionId: 'a' }),
        })
          .then(async (r) => {
            await r.arrayBuffer();
            return r.status;
          })
          .catch(() => 0),
      );
    }
    const warmAccepted = (await Promise.all(warmVotes)).filter((status) => status === 202).length;
    await eventually(
      `${warmAccepted} warm-up votes in the results`,
      async () => {
        const r = (await (await fetch(`${api}/v1/polls/${warmPoll}/results`)).json()) as { total: number };
        return r.total === warmAccepted ? true : undefined;
      },
      180_000,
    );

    tr = await trace(prefix, pollId);
    const total = votesPerSecond * seconds;
    const tokens = await Promise.all([...Array(total)].map((_, i) => mintToken({ privateKeyPem, sub: `${id}-v${i}` })));
    const acked: { key: string; sent: number; at: number }[] = []; // in the order the 202s arrived
    const refusedBy = new Map<number | string, number>();
    const seenAt: number[] = []; // seenAt[k] = when a message with total >= k+1 first arrived
    const live = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { reconnectPeriod: 0 });
    live.on('message', (_t, payload) => {
      if (payload.length === 0) return;
      const { total: n } = JSON.parse(payload.toString()) as { total: number };
      const at = now();
      while (seenAt.length < n) seenAt.push(at);
    });
    await live.subscribeAsync(`votestream/polls/${pollId}/totals`, { qos: 1 });

    // The CPU table's baseline: the same processes with no votes for a few seconds (fixed costs: polls, fetches,
    // timers; the shared stack's other clients).
    const watched = [...fleet.members.map((m) => ({ name: m.name, pid: m.process.pid })), ...stackWatched()];
    let idleCpu: CpuFigures | undefined;
    if (procAvailable) {
      const w = cpuWindow(watched);
      await sleep(idleWindowMs);
      idleCpu = w.end();
    }
    const histsBefore = await scrapeAll(fleet);
    const cpu = procAvailable ? cpuWindow(watched) : undefined;
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    let pending = 0;
    let killedAt: number | undefined;
    const killer = kill
      ? (async () => {
          await sleep((seconds * 1000) / 2);
          cpu?.beforeKill(fleet.member('stream-1').process.pid);
          killedAt = now();
          await fleet.kill9('stream-1');
        })()
      : Promise.resolve();
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / votesPerSecond - performance.now();
      if (wait > 0) await sleep(wait);
      // At most requestsInFlightMax requests open (one socket each): beyond it the generator falls behind the rate
      // asked (printed as "sent at") instead of opening sockets until requests fail.
      while (pending >= requestsInFlightMax) await sleep(1);
      pending++;
      const sent = now();
      const key = `${pollId}/${id}-v${i}`;
      inFlight.push(
        fetch(`${api}/v1/polls/${pollId}/votes`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${tokens[i]}`,
            'content-type': 'application/json',
            'idempotency-key': randomUUID(),
          },
          body: JSON.stringify({ optionId: i % 2 ? 'a' : 'b' }),
          signal: AbortSignal.timeout(30_000),
        }).then(
          async (res) => {
            await res.arrayBuffer();
            pending--;
            if (res.status === 202) acked.push({ key, sent, at: now() });
            else refusedBy.set(res.status, (refusedBy.get(res.status) ?? 0) + 1);
          },
          (err: unknown) => {
            pending--;
            const why = (err as Error).name ?? 'error';
            refusedBy.set(why, (refusedBy.get(why) ?? 0) + 1);
          },
        ),
      );
    }
    const sendMs = performance.now() - started;
    await Promise.all(inFlight);
    await killer;
    const deadline = performance.now() + 60_000;
    while (seenAt.length < acked.length && performance.now() < deadline) await sleep(50);
    const cpuFigures = cpu?.end();
    // The trace consumers are behind MQTT by at most their fetch wait; give them a moment to catch up.
    await sleep(1000);
    const histsAfter = await scrapeAll(fleet);
    await live.endAsync();

    const lat = acked.map((a, k) => (seenAt[k] ?? Number.NaN) - a.at).filter(Number.isFinite);
    const sentLat = [...acked]
      .map((a) => a.sent)
      .sort((a, b) => a - b)
      .map((t, k) => (seenAt[k] ?? Number.NaN) - t)
      .filter(Number.isFinite);
    const reached = (acked.length / sendMs) * 1000;
    const refused = [...refusedBy.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\n[${name}] ${votesPerSecond} votes/s asked for ${seconds} s: sent at ${((total / sendMs) * 1000).toFixed(0)}/s, ` +
        `${acked.length} accepted (${reached.toFixed(0)}/s), ${refused} refused` +
        (refused > 0 ? ` ${JSON.stringify(Object.fromEntries(refusedBy))}` : '') +
        `, ${streamInstances} stream process(es)${killedAt !== undefined ? ', stream-1 killed -9 in the middle' : ''}`,
    );
    const third = Math.floor(sentLat.length / 3);
    for (const [part, xs] of [
      ['first third', sentLat.slice(0, third)],
      ['middle third', sentLat.slice(third, 2 * third)],
      ['last third', sentLat.slice(2 * third)],
    ] as const)
      console.log(`  sent -> MQTT, ${part}: ${fmt([...xs])}`);
    console.log(`  votestream sent -> MQTT totals  ${fmt(sentLat)}   (upper bound of 202 -> screen)`);
    console.log(`  votestream 202 -> MQTT totals   ${fmt(lat)}`);
    if (killedAt !== undefined) {
      const after = acked.filter((a) => a.at >= (killedAt as number) - 2000);
      const idx = new Map(acked.map((a, k) => [a, k]));
      const killLat = after.map((a) => (seenAt[idx.get(a) ?? -1] ?? Number.NaN) - a.at).filter(Number.isFinite);
      console.log(`  202 -> MQTT of the votes acknowledged from 2 s before the kill on: ${fmt(killLat)}`);
    }
    if (lat.length < acked.length)
      console.log(`  ${acked.length - lat.length} acknowledged votes were not seen on MQTT within 60 s`);

    // Per-hop breakdown from the records' timestamps. The k-th decision produced (record timestamp order) is in
    // the first tally, and the first MQTT message, whose total is >= k.
    const ackOf = new Map(acked.map((a) => [a.key, a.at]));
    const byDecision = [...tr.decision.entries()].sort((a, b) => a[1][0] - b[1][0]);
    const hops: [string, number[]][] = [
      ['vote appended -> 202 received by the bench (ingest ack; not part of 202 -> screen)', []],
      ['vote appended -> decision produced (stage 1: fetch, read barrier, process)', []],
      ['decision produced -> tally produced (stage 1 commit, stage 2 fetch + process)', []],
      ['  of which: decision produced -> visible read_committed to the bench', []],
      ['tally produced -> MQTT received (stage 2 commit, projections, broker)', []],
      ['  of which: tally produced -> visible read_committed to the bench', []],
      ['= vote appended -> MQTT received', []],
      ['= 202 -> MQTT received (this matching)', []],
    ];
    const h = hops.map(([, xs]) => xs);
    const tallies = tr.tallies;
    let ti = 0;
    byDecision.forEach(([key, [decTs, decSeen]], k) => {
      const voteTs = tr?.voteTs.get(key);
      const ack = ackOf.get(key);
      while (ti < tallies.length && (tallies[ti]?.total ?? 0) < k + 1) ti++;
      const tally = tallies[ti];
      const screen = seenAt[k];
      if (voteTs === undefined || tally === undefined || screen === undefined) return;
      if (ack !== undefined) h[0]?.push(ack - voteTs);
      h[1]?.push(decTs - voteTs);
      h[2]?.push(tally.ts - decTs);
      h[3]?.push(decSeen - decTs);
      h[4]?.push(screen - tally.ts);
      h[5]?.push(tally.seen - tally.ts);
      h[6]?.push(screen - voteTs);
      if (ack !== undefined) h[7]?.push(screen - ack);
    });
    console.log('  per hop (each hop its own p50/p99: p99s do not add up; record timestamps are ms):');
    for (const [hop, xs] of hops) console.log(`    ${hop.padEnd(84)} ${fmt(xs)}`);
    serviceHists.forEach(([label], i) => {
      const which = `${label}${kill ? ' (survivors only)' : ''}`;
      console.log(`    ${which.padEnd(84)} ${histDelta(histsBefore[i] ?? new Map(), histsAfter[i] ?? new Map())}`);
    });
    if (cpuFigures && idleCpu) printCpu(cpuFigures, idleCpu, acked.length);
    return { name, asked: votesPerSecond, reached, lat202: lat } satisfies RunResult;
  } finally {
    await tr?.stop().catch(() => undefined);
    await fleet.stop();
    await dropKeyspace(keyspace);
  }
}

const results: RunResult[] = [];
for (const r of runs) {
  if (r === 'steady') results.push(await runOnce('steady', rate, 1, false));
  if (r === '1000') results.push(await runOnce('r1000', 1000, 1, false));
  if (r === 'kill') results.push(await runOnce('kill', rate, 2, true));
}
const baseline = await brokerBaseline();
console.log(`\nbaseline, same run: MQTT broker hop alone ${fmt(baseline)}`);
for (const r of results)
  console.log(
    r.lat202.length === 0
      ? `  ${r.name.padEnd(7)} ${r.asked} votes/s asked, ${r.reached.toFixed(0)}/s accepted: no vote on screen; target NOT reached`
      : `  ${r.name.padEnd(7)} ${r.asked} votes/s asked, ${r.reached.toFixed(0)}/s accepted: 202 -> MQTT p50 ${pct(r.lat202, 50).toFixed(1)} ms p99 ${pct(r.lat202, 99).toFixed(1)} ms ` +
          `(pipeline adds ${(pct(r.lat202, 50) - pct(baseline, 50)).toFixed(1)} ms at p50; p99 ${(pct(r.lat202, 99) / pct(baseline, 99)).toFixed(0)}x the broker hop's); target p99 < 500 ms: ${pct(r.lat202, 99) < 500 ? 'met' : 'NOT met'}`,
  );
