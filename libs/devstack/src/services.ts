import { join } from 'node:path';
import { type BuiltRun, freePort, httpOk, repoRoot, type ServiceProcess, startService } from './process.ts';

export type ServiceName = 'ingest' | 'stream' | 'projections';

/** Each service's entry (sources; the build's is the same path under dist/ with .js) and its port variables. */
const services: Record<ServiceName, { entry: string; portVar: string; metricsPortVar: string }> = {
  ingest: { entry: 'ingest/src/main.ts', portVar: 'INGEST_PORT', metricsPortVar: 'INGEST_METRICS_PORT' },
  projections: { entry: 'projections/src/main.ts', portVar: 'HTTP_PORT', metricsPortVar: 'PROJECTIONS_METRICS_PORT' },
  // The stream processors serve health and metrics on one port.
  stream: { entry: 'stream/src/main.ts', portVar: 'STREAM_METRICS_PORT', metricsPortVar: 'STREAM_METRICS_PORT' },
};

/** A votestream service process and where it answers. */
export interface RunningService {
  readonly service: ServiceName;
  readonly process: ServiceProcess;
  /** ingest: the vote API; projections: its HTTP API; stream: its health and metrics port. */
  readonly port: number;
  readonly metricsPort: number;
  readonly url: string;
  /** Where its Prometheus `/metrics` is served. */
  readonly metricsUrl: string;
}

/**
 * Starts one votestream service (`node --import tsx <service>/src/main.ts`, or the build with `built`) through
 * startService on the given ports (free ones when not given) with `env` on top, and resolves once its `/readyz`
 * answers 200. `entry` replaces the service's main (e.g. ingest/test/fault-entry.ts); `name` (default: the
 * service) names its log file in `logDir`.
 */
export async function startPipelineService(
  service: ServiceName,
  opts: {
    env: Record<string, string>;
    logDir: string;
    name?: string;
    port?: number;
    metricsPort?: number;
    entry?: string;
    built?: BuiltRun;
    execArgv?: string[];
    readyTimeoutMs?: number;
  },
): Promise<RunningService> {
  const spec = services[service];
  const port = opts.port ?? (await freePort());
  const metricsPort = service === 'stream' ? port : (opts.metricsPort ?? (await freePort()));
  const name = opts.name ?? service;
  const entry = opts.entry ?? spec.entry;
  const url = `http://127.0.0.1:${port}`;
  const process = await startService({
    name,
    entry: opts.built
      ? join(opts.built.cwd, entry.replace('/src/', '/dist/').replace(/\.ts$/, '.js'))
      : join(repoRoot, entry),
    ...(opts.built ? { built: opts.built } : {}),
    ...(opts.execArgv ? { execArgv: opts.execArgv } : {}),
    env: { ...opts.env, [spec.portVar]: String(port), [spec.metricsPortVar]: String(metricsPort) },
    logFile: join(opts.logDir, `${name}.log`),
    ready: httpOk(`${url}/readyz`),
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
  });
  return { service, process, port, metricsPort, url, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}
