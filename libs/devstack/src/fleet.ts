import { createKafka, createLogger, ensureTopics, loadKafkaSecurity, pipelineTopicSpecs } from '@votestream/runtime';
import { freePort, type ServiceProcess } from './process.ts';
import { type ServiceName, startPipelineService } from './services.ts';

export const serviceNames: readonly ServiceName[] = ['stream', 'projections', 'ingest'];

/** One running (or killed) instance of a service, with its own ports; `name` is e.g. `stream-2`. */
export interface FleetMember {
  readonly name: string;
  readonly service: ServiceName;
  /** ingest: its API port; projections: its HTTP port; stream: its metrics/health port. */
  readonly port: number;
  /** Where it serves Prometheus `/metrics` (stream: the same as `port`). */
  readonly metricsPort: number;
  process: ServiceProcess;
}

export interface Fleet {
  readonly prefix: string;
  /** Exits nobody asked for (not kill9/stop), each followed by a supervised restart, as Kubernetes would. */
  readonly crashes: { name: string; exit: number | string; at: number }[];
  readonly env: Record<string, string>;
  readonly members: FleetMember[];
  /** The API base URLs of the ingest instances (a voter picks one, as behind a load balancer). */
  readonly apiUrls: string[];
  member(name: string): FleetMember;
  /** kill -9 of one instance; resolves once it is gone (the supervisor does not restart it: call restart). */
  kill9(name: string): Promise<void>;
  /** Starts a stopped or killed instance again with the same settings and ports; resolves once it is ready. */
  restart(name: string): Promise<void>;
  /** Resolves once no supervised restart is in progress. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `instances[s]` processes of each service on the local stack (or the 3-node cluster: pass its
 * KAFKA_BROKERS in `env`), all with one topic prefix, Redis prefix and keyspace (`env`), each with its own
 * ports. Instances of one service share its consumer groups, so partitions are split between them and a
 * killed one's partitions move to the others. Creates the pipeline's topics first with `replicationFactor`.
 * The CQL keyspace must already be migrated.
 */
export async function startFleet(opts: {
  prefix: string;
  instances: Record<ServiceName, number>;
  env: Record<string, string>;
  logDir: string;
  replicationFactor?: number;
  readyTimeoutMs?: number;
  /**
   * Restart an instance that exits on its own after this delay, like a Kubernetes Deployment (a process that
   * gives up exits and relies on that). Off when undefined.
   */
  superviseRestartDelayMs?: number;
}): Promise<Fleet> {
  const replicationFactor = opts.replicationFactor ?? 1;
  const env: Record<string, string> = {
    TOPIC_PREFIX: opts.prefix,
    LOG_LEVEL: 'info',
    STREAM_CHANGELOG_REPLICATION: String(replicationFactor),
    ...opts.env,
  };
  const admin = createKafka({
    clientId: 'devstack-fleet',
    brokers: (env.KAFKA_BROKERS ?? process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    security: loadKafkaSecurity({ ...process.env, ...env }),
    logger: createLogger('devstack', 'warn'),
  }).admin();
  await admin.connect();
  try {
    await ensureTopics(admin, pipelineTopicSpecs(opts.prefix), replicationFactor);
  } finally {
    await admin.disconnect();
  }

  const launch = async (service: ServiceName, name: string, port: number, metricsPort: number) =>
    (
      await startPipelineService(service, {
        name,
        port,
        metricsPort,
        env,
        logDir: opts.logDir,
        readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
      })
    ).process;

  const members: FleetMember[] = [];
  const metricsPorts = new Map<string, number>();
  try {
    for (const service of serviceNames) {
      for (let i = 1; i <= opts.instances[service]; i++) {
        const name = `${service}-${i}`;
        const port = await freePort();
        const metricsPort = await freePort();
        metricsPorts.set(name, metricsPort);
        members.push({
          name,
          service,
          port,
          metricsPort: service === 'stream' ? port : metricsPort,
          process: await launch(service, name, port, metricsPort),
        });
      }
    }
  } catch (err) {
    for (const m of members.reverse()) await m.process.stop(5000);
    throw err;
  }
  const member = (name: string) => {
    const m = members.find((x) => x.name === name);
    if (!m) throw new Error(`no fleet member ${name}`);
    return m;
  };
  const crashes: Fleet['crashes'] = [];
  const expected = new Set<ServiceProcess>(); // processes we kill or stop ourselves
  const restarts = new Set<Promise<void>>();
  let stopping = false;
  const supervise = (m: FleetMember) => {
    const p = m.process;
    void p.exited.then((exit) => {
      if (expected.has(p) || stopping || opts.superviseRestartDelayMs === undefined) return;
      crashes.push({ name: m.name, exit, at: performance.now() });
      const r = (async () => {
        await new Promise((ok) => setTimeout(ok, opts.superviseRestartDelayMs));
        if (stopping || m.process !== p) return;
        // A failed start is retried: the supervisor never gives up while the fleet runs.
        for (let attempt = 0; attempt < 10 && !stopping; attempt++) {
          try {
            m.process = await launch(m.service, m.name, m.port, metricsPorts.get(m.name) ?? 0);
            supervise(m);
            return;
          } catch {
            await new Promise((ok) => setTimeout(ok, 2000));
          }
        }
      })();
      restarts.add(r);
      void r.finally(() => restarts.delete(r));
    });
  };
  for (const m of members) supervise(m);
  return {
    prefix: opts.prefix,
    env,
    members,
    crashes,
    apiUrls: members.filter((m) => m.service === 'ingest').map((m) => `http://127.0.0.1:${m.port}`),
    member,
    async kill9(name) {
      while (restarts.size > 0) await Promise.all([...restarts]);
      const m = member(name);
      expected.add(m.process);
      await m.process.kill9();
    },
    async restart(name) {
      while (restarts.size > 0) await Promise.all([...restarts]);
      const m = member(name);
      expected.add(m.process);
      await m.process.stop(5000);
      m.process = await launch(m.service, m.name, m.port, metricsPorts.get(m.name) ?? 0);
      supervise(m);
    },
    async settled() {
      while (restarts.size > 0) await Promise.all([...restarts]);
    },
    async stop() {
      stopping = true;
      await Promise.all([...restarts]);
      // Front to back: no new votes, then let the processors and projections finish what they hold.
      for (const service of ['ingest', 'stream', 'projections'] as const)
        await Promise.all(
          members
            .filter((m) => m.service === service)
            .map((m) => {
              expected.add(m.process);
              return m.process.stop();
            }),
        );
    },
  };
}
