// The chaos run: the whole system on the local 3-node Kafka cluster (two instances of ingest, stream and
// projections), a steady voter load, and random faults one at a time — kill -9 of a service process (the
// supervisor restarts it), kill -9 of a Kafka node (restarted with its data), SIGSTOP of a Kafka node (a
// zombie, SIGCONT later). Each fault's recovery is timed on the MQTT totals; at the end the poll is closed and
// the audit compares what every voter was told with what was counted (audit.ts).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClusterNode,
  clusterAdmin,
  clusterBrokers,
  clusterHealthy,
  clusterReplicationFactor,
  type Fleet,
  leaderOf,
  repoRoot,
  runRecount,
  stackCluster,
  startFleet,
  transactionCoordinatorOf,
  waitFullyReplicated,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import { applyCqlMigrations, type CqlClient, createCqlClient, topicNames } from '@votestream/runtime';
import type { RecountReport } from '@votestream/stream';
import mqtt from 'mqtt';
import { type AuditReport, audit } from './audit.ts';
import { VoterLoad } from './voters.ts';

export type FaultKind = 'kill' | 'pause' | 'restart';
export interface Fault {
  /** e.g. `stream-2`, `kafka-3`. */
  target: string;
  kind: FaultKind;
  /** Why this target (for scripted faults), e.g. `leader of votes[0]`. */
  role?: string;
  /** From the fault until the first MQTT totals message that counts a voter who started after the fault. */
  recoverMs: number | undefined;
}

/** A scripted fault: a Kafka node chosen by its role when the fault starts, or a named service instance. */
export type PlannedFault =
  | { kind: FaultKind; node: 'votes-leader' | 'transaction-coordinator' }
  | { kind: 'kill'; process: string };

export interface SystemOptions {
  instances: { ingest: number; stream: number; projections: number };
  /** Extra service environment (e.g. session timeouts). */
  env?: Record<string, string>;
  /** Bring the cluster up if it is down, and down again at close if this run brought it up. */
  manageCluster: boolean;
  log: (line: string) => void;
}

export interface FaultRunOptions {
  /** Random faults to inject (ignored when `plan` is given). */
  kills: number;
  /** Scripted faults, in order, instead of random ones. */
  plan?: PlannedFault[];
  /** Stop injecting faults after this long even if fewer than `kills` were done (the run stays bounded). */
  faultPhaseMsMax: number;
  votersPerSecond: number;
  /** Which kinds of targets random faults pick from. */
  targets: ReadonlyArray<'ingest' | 'stream' | 'projections' | 'kafka'>;
  /** How long a killed process stays dead before the supervisor restarts it. */
  processDownMs: number;
  /** How long a killed Kafka node stays dead, or a stopped one stopped. */
  brokerDownMs: number;
  recoverTimeoutMs: number;
  convergeTimeoutMs: number;
  /** A voter left without an answer resends this much later (0: never). */
  comebackAfterMs: number;
  seed: number;
  log: (line: string) => void;
}

export interface ChaosResult {
  faults: Fault[];
  /** Service processes that exited on their own during the run (restarted by the supervisor). */
  crashes: string[];
  audit: AuditReport;
  /**
   * `npm run recount` on the poll after the audit (issue 15): the votes log replayed by the dedupe rules against
   * the decisions, CQL, the results API and the retained MQTT message. Exit code 0: all agree and are final.
   */
  recount: { code: number | null; report: RecountReport };
  skippedVoters: number;
  runMs: number;
}

/** A small deterministic generator (mulberry32), so a run can be repeated with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stackDir = process.env.VOTESTREAM_STACK_DIR ?? join(repoRoot, '.stack');
const mqttUrl = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883';
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';

/** The services on the cluster, with their own topic prefix, keyspace and Redis prefix; polls are per fault run. */
export interface ChaosSystem {
  readonly id: string;
  readonly fleet: Fleet;
  readonly cql: CqlClient;
  readonly keyspace: string;
  close(): Promise<void>;
}

export async function startChaosSystem(o: SystemOptions): Promise<ChaosSystem> {
  const id = `chaos${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const keyspace = `ks_${id}`;
  let startedCluster = false;
  if (!(await clusterHealthy())) {
    if (!o.manageCluster) throw new Error('the 3-node cluster is not up (compose/native/stack cluster up)');
    o.log('starting the 3-node Kafka cluster');
    await stackCluster('up');
    startedCluster = true;
  }
  const cql = createCqlClient({
    contactPoints: (process.env.CQL_CONTACT_POINTS ?? '127.0.0.1:9042').split(','),
    localDataCenter: process.env.CQL_LOCAL_DC ?? 'datacenter1',
  });
  let fleet: Fleet | undefined;
  const close = async () => {
    await fleet?.stop().catch(() => undefined);
    // The run's topics (pipeline and changelogs) go, so repeated runs do not fill the cluster.
    await clusterAdmin()
      .then(async (a) => {
        try {
          const mine = (await a.listTopics()).filter((t) => t.includes(id));
          if (mine.length > 0) await a.deleteTopics({ topics: mine, timeout: 30_000 });
        } finally {
          await a.disconnect();
        }
      })
      .catch(() => undefined);
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
    if (startedCluster) {
      o.log('stopping the 3-node Kafka cluster');
      await stackCluster('down').catch(() => undefined);
    }
  };
  try {
    await applyCqlMigrations({ client: cql, keyspace, dir: join(repoRoot, 'migrations/cql') });
    o.log(`starting ${JSON.stringify(o.instances)} on ${clusterBrokers.join(',')} (prefix ${id}.)`);
    fleet = await startFleet({
      prefix: `${id}.`,
      instances: o.instances,
      replicationFactor: clusterReplicationFactor,
      logDir: join(stackDir, 'logs', id),
      // A process that exits on its own (e.g. KafkaJS rejecting a consumer restart during a coordinator move)
      // is restarted a second later, as Kubernetes would; such exits are listed in the result.
      superviseRestartDelayMs: 1000,
      env: {
        KAFKA_BROKERS: clusterBrokers.join(','),
        CQL_KEYSPACE: keyspace,
        REDIS_PREFIX: `${id}:`,
        STREAM_APPLICATION_ID: `${id}-stream`,
        PROJECTIONS_GROUP_ID: `${id}-projections`,
        CHALLENGE_POLICY: 'off',
        RATE_NETWORK_POINTS: '100000',
        STREAM_GRACE_MS: '1000',
        // debug: ingest logs where Kafka said each batch landed, so a lost vote can be matched to its acknowledgement.
        LOG_LEVEL: 'debug',
        ...o.env,
      },
    });
  } catch (err) {
    await close();
    throw err;
  }
  return { id, fleet, cql, keyspace, close };
}

/** Everything in one go: the system, one fault run, the system stopped (also on failure). */
export async function runChaos(o: SystemOptions & FaultRunOptions): Promise<ChaosResult> {
  const system = await startChaosSystem(o);
  try {
    return await runFaults(system, o);
  } finally {
    await system.close();
  }
}

/**
 * One poll, a voter load on it, the faults (scripted or random, one at a time), then the audit. Every process
 * and node this run stopped is running again when it returns.
 */
export async function runFaults(system: ChaosSystem, o: FaultRunOptions): Promise<ChaosResult> {
  const t0 = performance.now();
  const rnd = random(o.seed);
  const privateKeyPem = readFileSync(join(stackDir, 'secrets/dev-jwt-private.pem'), 'utf8');
  const { fleet: f, id } = system;
  const pollId = `poll-${id}-${randomBytes(3).toString('hex')}`;
  const options = ['north', 'south', 'east'];
  const api = () => f.apiUrls[Math.floor(rnd() * f.apiUrls.length)] as string;
  const admin = await mintToken({ privateKeyPem, sub: 'chaos-admin', admin: true });
  const created = await fetch(`${api()}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pollId, title: 'chaos', options: options.map((x) => ({ id: x, label: x })) }),
  });
  if (created.status !== 201) throw new Error(`create poll: ${created.status} ${await created.text()}`);

  let live: mqtt.MqttClient | undefined;
  let load: VoterLoad | undefined;
  const paused = new Set<ClusterNode>();
  const down = new Set<ClusterNode>();
  const kafkaAdmin = await clusterAdmin();
  try {
    // The screen: every totals message, with when it arrived.
    const screen: { at: number; total: number }[] = [];
    live = await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 1000 });
    live.on('message', (_t, payload) => {
      if (payload.length > 0)
        screen.push({ at: performance.now(), total: (JSON.parse(payload.toString()) as { total: number }).total });
    });
    await live.subscribeAsync(`votestream/polls/${pollId}/totals`, { qos: 1 });

    const v = new VoterLoad({
      apiUrls: () => f.apiUrls,
      pollId,
      options,
      privateKeyPem,
      votersPerSecond: o.votersPerSecond,
      votersInFlightMax: Math.max(50, o.votersPerSecond * 20),
      resendsMax: 4,
      requestTimeoutMs: 15_000,
      comebackAfterMs: o.comebackAfterMs,
      idPrefix: pollId,
    });
    load = v;
    v.start();
    /** Waits until the screen shows a voter who started after `since` (the pipeline counts again). */
    const recovery = async (since: number, timeoutMs = o.recoverTimeoutMs): Promise<number | undefined> => {
      const before = v.voters.filter((x) => x.startedAt <= since).length;
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const m = screen.find((s) => s.at > since && s.total > before);
        if (m) return m.at - since;
        if (performance.now() > deadline) return undefined;
        await sleep(100);
      }
    };
    // The first assignments of a fresh system (every group's first join, every task's first restore) take longer
    // than a recovery on a busy machine.
    const warm = await recovery(performance.now(), Math.max(o.recoverTimeoutMs, 240_000));
    if (warm === undefined) throw new Error('no votes on screen within 240 s of the start of the load');
    o.log(
      `load running at ${o.votersPerSecond} voters/s on ${pollId}; first votes on screen after ${Math.round(warm)} ms`,
    );

    // Every topic of this run (pipeline and the stream's changelogs) and the internal ones.
    const watched = async () => [
      ...(await kafkaAdmin.listTopics()).filter((t) => t.includes(id)),
      '__transaction_state',
      '__consumer_offsets',
    ];
    const transactionalId = `${id}-stream-${topicNames(`${id}.`).votes}-0`; // the dedupe task of votes[0]
    const processes = f.members.filter((m) => (o.targets as readonly string[]).includes(m.service)).map((m) => m.name);
    const pool = [...processes, ...(o.targets.includes('kafka') ? ['kafka'] : [])];
    const total = o.plan?.length ?? o.kills;
    const faults: Fault[] = [];
    for (let k = 0; k < total && performance.now() - t0 < o.faultPhaseMsMax; k++) {
      await f.settled();
      let planned = o.plan?.[k];
      if (!planned) {
        if (pool.length === 0) throw new Error('no fault targets');
        const pick = pool[Math.floor(rnd() * pool.length)] as string;
        planned =
          pick === 'kafka'
            ? { kind: rnd() < 0.7 ? 'kill' : 'pause', node: rnd() < 0.5 ? 'votes-leader' : 'transaction-coordinator' }
            : { kind: 'kill', process: pick };
      }
      let fault: Fault;
      if ('node' in planned) {
        // One broker failure at a time: a broker fault waits until every replica is in sync again (with a node
        // still catching up, losing another would leave partitions below min.insync.replicas: unavailable,
        // which is Kafka's promise, but no longer a one-failure test).
        await waitFullyReplicated(kafkaAdmin, await watched(), 180_000).catch((err: unknown) =>
          o.log(`replicas still not all in sync (${(err as Error).message}); injecting the fault anyway`),
        );
        const node =
          planned.node === 'votes-leader'
            ? await leaderOf(kafkaAdmin, topicNames(`${id}.`).votes, Math.floor(rnd() * 8))
            : await transactionCoordinatorOf(kafkaAdmin, transactionalId);
        const role =
          planned.node === 'votes-leader' ? 'leader of a votes partition' : `coordinator of ${transactionalId}`;
        const at = performance.now();
        const rec = recovery(at);
        if (planned.kind === 'kill') {
          await stackCluster('kill', String(node));
          down.add(node);
          await sleep(o.brokerDownMs);
          await stackCluster('start', String(node));
          down.delete(node);
        } else if (planned.kind === 'pause') {
          await stackCluster('stop', String(node));
          paused.add(node);
          await sleep(o.brokerDownMs);
          await stackCluster('cont', String(node));
          paused.delete(node);
        } else {
          // A clean restart with its data (SIGTERM: controlled shutdown moves its leaderships first).
          down.add(node);
          await stackCluster('restart', String(node));
          down.delete(node);
        }
        fault = { target: `kafka-${node}`, kind: planned.kind, role, recoverMs: await rec };
      } else {
        const at = performance.now();
        const rec = recovery(at);
        await f.kill9(planned.process);
        await sleep(o.processDownMs);
        await f.restart(planned.process);
        fault = { target: planned.process, kind: 'kill', recoverMs: await rec };
      }
      faults.push(fault);
      o.log(
        `fault ${k + 1}/${total}: ${fault.kind} ${fault.target}${fault.role ? ` (${fault.role})` : ''}, recovered in ${fault.recoverMs === undefined ? 'NOT within the timeout' : `${Math.round(fault.recoverMs)} ms`} (voters so far ${v.started})`,
      );
      await sleep(1000 + rnd() * 2000);
    }

    // Let the last fault's resends settle, then stop the voters (the ones waiting for a comeback resend finish).
    await sleep(3000);
    o.log('stopping the voter load');
    await v.stop();
    o.log(`auditing ${v.voters.length} voters`);
    const report = await audit({
      apiUrl: api,
      pollId,
      options,
      keyspace: system.keyspace,
      cql: system.cql,
      mqttUrl,
      privateKeyPem,
      voters: v.voters,
      brokers: clusterBrokers,
      prefix: `${id}.`,
      registryUrl,
      convergeTimeoutMs: o.convergeTimeoutMs,
      receiptSample: 100,
    });
    o.log('recounting the poll from the votes log (npm run recount)');
    const recounted = await runRecount(f.env, pollId, ['--results-url', api(), '--mqtt-url', mqttUrl]);
    const recount = { code: recounted.code, report: recounted.report as RecountReport };
    if (recount.code !== 0) o.log(`recount exit ${recount.code}: ${recounted.stderr}`);
    const crashes = f.crashes.filter((c) => c.at >= t0).map((c) => `${c.name} (exit ${c.exit})`);
    return { faults, crashes, audit: report, recount, skippedVoters: v.skipped, runMs: performance.now() - t0 };
  } finally {
    for (const node of paused) await stackCluster('cont', String(node)).catch(() => undefined);
    for (const node of down) await stackCluster('start', String(node)).catch(() => undefined);
    await load?.stop().catch(() => undefined);
    await live?.endAsync().catch(() => undefined);
    await kafkaAdmin.disconnect().catch(() => undefined);
  }
}

/** The result as a table; the correctness rows first. */
export function formatChaos(r: ChaosResult): string {
  const a = r.audit;
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length === 0 ? Number.NaN : (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number);
  };
  const byTarget = new Map<string, Fault[]>();
  for (const f of r.faults) {
    const key = `${f.target.replace(/-\d+$/, '')} ${f.kind}`;
    byTarget.set(key, [...(byTarget.get(key) ?? []), f]);
  }
  const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '-');
  const lines = [
    `chaos run: ${r.faults.length} faults in ${s(r.runMs)}`,
    '',
    'faults by target        count  recovered  recover p50  recover p99  recover max',
  ];
  for (const [key, fs] of [...byTarget.entries()].sort()) {
    const rec = fs.map((f) => f.recoverMs).filter((x): x is number => x !== undefined);
    lines.push(
      `  ${key.padEnd(22)}${String(fs.length).padStart(5)}${String(rec.length).padStart(11)}  ${s(pct(rec, 50)).padStart(11)}  ${s(pct(rec, 99)).padStart(11)}  ${s(rec.length ? Math.max(...rec) : Number.NaN).padStart(11)}`,
    );
  }
  const notRecovered = r.faults.filter((f) => f.recoverMs === undefined).length;
  lines.push(
    '',
    `voters: accepted (202) ${a.accepted}, refused (4xx) ${a.refused}, unknown (no answer / 5xx) ${a.unknown}, not started (load limit) ${r.skippedVoters}`,
    `final totals: results ${JSON.stringify(a.results?.totals)} (${a.results?.total}), CQL ${a.cql?.total}, MQTT ${a.mqtt?.total}; the stream's COUNTED decisions ${JSON.stringify(a.countedByOption)} (of ${a.decisions} decisions)`,
    `time to converge after the poll closed: ${s(a.convergeMs)}`,
    `faults not recovered within the timeout: ${notRecovered}`,
    `processes that exited on their own (restarted by the supervisor): ${r.crashes.length}${r.crashes.length ? ` — ${r.crashes.join(', ')}` : ''}`,
    '',
    'correctness                                   count',
    `  lost acknowledged votes                     ${a.lostAcknowledged}`,
    `  double counts                               ${a.doubleCounts}`,
    `  202s whose vote is not the counted one      ${a.wrongAccepted}`,
    `  refused (4xx) votes counted                 ${a.refusedCounted}`,
    `  decisions without their ballot receipt      ${a.receiptsMissing}`,
    `  decision records not matched one to one by  ${a.analyticsMismatches} (${a.analyticsRecords} analytics records)`,
    `    an analytics record (analytics stage)`,
    `  votes/me not naming the counted vote        ${a.receiptMismatches} (of ${a.receiptsChecked} sampled)`,
    `  results = CQL = MQTT = decisions, final     ${a.agree ? 'yes' : 'NO'}`,
    `  recount from the votes log agrees, final    ${r.recount.code === 0 ? 'yes' : `NO (exit ${r.recount.code})`}`,
    `    ${r.recount.report.sources.map((x) => `${x.source} ${JSON.stringify(x.totals)}`).join('; ')}`,
    `    verdicts ${JSON.stringify(r.recount.report.recount.verdicts)}${r.recount.report.disagreements.length ? `; disagreements ${JSON.stringify(r.recount.report.disagreements)}` : ''}${r.recount.report.notFinal.length ? `; not final ${r.recount.report.notFinal.join(', ')}` : ''}`,
    '',
    `decision records repeated in vote-decisions (same vote, same decision; not counted twice): ${a.duplicateDecisionRecords}`,
  );
  if (a.examples.length > 0) lines.push('', 'examples:', ...a.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** True when every correctness column is 0 and the stores agree. */
export function chaosCorrect(r: ChaosResult): boolean {
  const a = r.audit;
  return (
    a.lostAcknowledged === 0 &&
    a.doubleCounts === 0 &&
    a.wrongAccepted === 0 &&
    a.refusedCounted === 0 &&
    a.receiptsMissing === 0 &&
    a.analyticsMismatches === 0 &&
    a.receiptMismatches === 0 &&
    a.agree &&
    r.recount.code === 0
  );
}
