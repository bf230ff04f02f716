import { createKafka, createLogger, ensureTopics, loadKafkaSecurity, pipelineTopicSpecs } from '@votestream/runtime';
import { type BuiltRun, freePort, type ServiceProcess } from './process.ts';
import { type ServiceName, startPipelineService } from './services.ts';

export interface VotestreamPorts {
  ingest: number;
  projections: number;
  streamMetrics: number;
  /** Metrics ports (INGEST_METRICS_PORT, PROJECTIONS_METRICS_PORT); a free port each when not given. */
  ingestMetrics?: number;
  projectionsMetrics?: number;
}

export interface RunningVotestream {
  prefix: string;
  apiUrl: string;
  projectionsUrl: string;
  /** Where ingest and projections serve Prometheus `/metrics` (not their public ports). */
  ingestMetricsUrl: string;
  projectionsMetricsUrl: string;
  ingest: ServiceProcess;
  stream: ServiceProcess;
  projections: ServiceProcess;
  env: Record<string, string>;
  /** Restarts one service with the same settings (after stop() or kill9()). */
  restart(name: 'ingest' | 'stream' | 'projections'): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

/**
 * Starts ingest, the stream processors and projections as separate processes on the local stack, sharing one
 * topic prefix, Redis prefix and CQL keyspace (`env` on top). Creates the pipeline's topics first.
 * The CQL keyspace must already be migrated (npm run migrate, or applyCqlMigrations in a test).
 */
export async function startVotestream(opts: {
  prefix: string;
  ports: VotestreamPorts;
  env?: Record<string, string>;
  logDir: string;
  /** Run the build (`<pkg>/dist/main.js` under plain node in `built.cwd`) instead of the sources under tsx. */
  built?: BuiltRun;
}): Promise<RunningVotestream> {
  const ingestMetrics = opts.ports.ingestMetrics ?? (await freePort());
  const projectionsMetrics = opts.ports.projectionsMetrics ?? (await freePort());
  const env: Record<string, string> = {
    TOPIC_PREFIX: opts.prefix,
    INGEST_PORT: String(opts.ports.ingest),
    INGEST_METRICS_PORT: String(ingestMetrics),
    HTTP_PORT: String(opts.ports.projections),
    PROJECTIONS_METRICS_PORT: String(projectionsMetrics),
    STREAM_METRICS_PORT: String(opts.ports.streamMetrics),
    LOG_LEVEL: 'info',
    ...opts.env,
  };
  const logger = createLogger('devstack', 'warn');
  const admin = createKafka({
    clientId: 'devstack',
    brokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    security: loadKafkaSecurity({ ...process.env, ...env }),
    logger,
  }).admin();
  await admin.connect();
  try {
    await ensureTopics(admin, pipelineTopicSpecs(opts.prefix));
  } finally {
    await admin.disconnect();
  }

  const apiUrl = `http://127.0.0.1:${opts.ports.ingest}`;
  const projectionsUrl = `http://127.0.0.1:${opts.ports.projections}`;
  const ports: Record<ServiceName, { port: number; metricsPort?: number }> = {
    stream: { port: opts.ports.streamMetrics },
    projections: { port: opts.ports.projections, metricsPort: projectionsMetrics },
    ingest: { port: opts.ports.ingest, metricsPort: ingestMetrics },
  };
  const start = async (name: ServiceName) =>
    (
      await startPipelineService(name, {
        ...ports[name],
        ...(opts.built ? { built: opts.built } : {}),
        env,
        logDir: opts.logDir,
      })
    ).process;

  const started: ServiceProcess[] = [];
  try {
    const stream = await start('stream');
    started.push(stream);
    const projections = await start('projections');
    started.push(projections);
    const ingest = await start('ingest');
    started.push(ingest);
    const running: RunningVotestream = {
      prefix: opts.prefix,
      apiUrl,
      projectionsUrl,
      ingestMetricsUrl: `http://127.0.0.1:${ingestMetrics}`,
      projectionsMetricsUrl: `http://127.0.0.1:${projectionsMetrics}`,
      ingest,
      stream,
      projections,
      env,
      async restart(name) {
        const p = await start(name);
        running[name] = p;
        return p;
      },
      async stop() {
        // Front to back: no new votes, then let the processors and projections finish what they hold.
        for (const p of [running.ingest, running.stream, running.projections]) await p.stop();
      },
    };
    return running;
  } catch (err) {
    for (const p of started.reverse()) await p.stop(5000);
    throw err;
  }
}
