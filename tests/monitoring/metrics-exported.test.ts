// The alert rules and dashboards of deploy/monitoring name only metrics the services really export: ingest, the
// stream processors and projections run as processes on the real local stack, and every metric name a rule or a
// panel selects must appear in one of their /metrics expositions. A renamed metric fails here, not on show night.
import { join } from 'node:path';
import {
  eventually,
  freePort,
  isolatedEnv,
  migrateKeyspace,
  type RunningVotestream,
  repoRoot,
  stack,
  startVotestream,
  uniqueId,
  type VotestreamPorts,
} from '@votestream/devstack';
import { createCqlClient } from '@votestream/runtime';
import test from 'ava';
import { exposedNames, metricNames, readMonitoring } from '../support/monitoring.ts';

const monitoringDir = join(repoRoot, 'deploy/monitoring');

/**
 * Selectors by name pattern that may match no metric of this build, each with the reason. Nothing else may.
 * `.+_dead_letter_total`: the DeadLetterRecords alert covers every service's dead-letter counter by pattern; the
 * counters arrive with the dead-letter work (issue 12). Once one exists this entry is still harmless.
 */
const patternsAllowedToMatchNothing = new Set(['.+_dead_letter_total']);

/** Where each service serves Prometheus metrics: INGEST_METRICS_PORT, STREAM_METRICS_PORT, PROJECTIONS_METRICS_PORT. */
function metricsUrls(system: RunningVotestream, ports: VotestreamPorts): string[] {
  const base = { ingest: system.ingestMetricsUrl, projections: system.projectionsMetricsUrl };
  return [`${base.ingest}/metrics`, `http://127.0.0.1:${ports.streamMetrics}/metrics`, `${base.projections}/metrics`];
}

test('metric names are read from PromQL: selectors, not labels, functions, ranges or keywords', (t) => {
  const { names, patterns } = metricNames(
    'histogram_quantile(0.99, sum by (le, stage) (rate(stream_commit_duration_seconds_bucket{stage="dedupe"}[5m]))) > 0.25 ' +
      'and on (stage) abs(sum(increase(ingest_votes_total{outcome=~"a|b"}[15m] offset 1m)) - x:y:rate1m) > 1e-9 ' +
      'or sum without (pod) (rate({__name__=~".+_dead_letter_total", service="x"}[5m]))',
  );
  t.deepEqual([...names].sort(), ['ingest_votes_total', 'stream_commit_duration_seconds_bucket', 'x:y:rate1m']);
  t.deepEqual([...patterns], ['.+_dead_letter_total']);
});

test('every rule and dashboard query of deploy/monitoring is read (none silently skipped)', (t) => {
  const { queries, recorded } = readMonitoring(monitoringDir);
  t.is(queries.filter((q) => q.source.startsWith('rules/')).length, 21);
  t.is(queries.filter((q) => q.source.startsWith('dashboards/')).length, 32);
  t.is(recorded.size, 6);
});

test('every metric a rule or dashboard names is exported by the running ingest, stream and projections', async (t) => {
  t.timeout(8 * 60_000);
  const { queries, recorded } = readMonitoring(monitoringDir);
  const wanted = new Map<string, string>(); // metric name -> first query naming it
  const patterns = new Map<string, string>();
  for (const q of queries) {
    const { names, patterns: p } = metricNames(q.expr);
    for (const n of names) if (!recorded.has(n) && !wanted.has(n)) wanted.set(n, q.source);
    for (const re of p) if (!patterns.has(re)) patterns.set(re, q.source);
  }
  t.true(wanted.size >= 20, `only ${wanted.size} metric names found in the rules and dashboards`);

  const id = uniqueId('mon');
  const keyspace = `ks_${id}`;
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
  });
  await migrateKeyspace(keyspace);

  const ports = {
    ingest: await freePort(),
    projections: await freePort(),
    streamMetrics: await freePort(),
    ingestMetrics: await freePort(),
    projectionsMetrics: await freePort(),
  };
  const system = await startVotestream({
    prefix: `${id}.`,
    ports,
    logDir: join(repoRoot, 'test-results/monitoring-logs'),
    env: {
      ...isolatedEnv(id),
      INGEST_METRICS_PORT: String(ports.ingestMetrics),
      PROJECTIONS_METRICS_PORT: String(ports.projectionsMetrics),
    },
  });
  t.teardown(() => system.stop());
  const urls = metricsUrls(system, ports);

  // Some metrics are registered when a task starts (the dedupe processor's decision counter): wait until every
  // wanted name is exposed or the deadline passes, then report exactly what is missing.
  let exposed = new Set<string>();
  const missing = () => [...wanted.keys()].filter((n) => !exposed.has(n));
  await eventually(
    'every metric named by deploy/monitoring to be exposed',
    async () => {
      const texts = await Promise.all(
        urls.map(async (u) => {
          const res = await fetch(u, { signal: AbortSignal.timeout(5000) });
          if (!res.ok) throw new Error(`${u}: HTTP ${res.status}`);
          return res.text();
        }),
      );
      exposed = new Set(texts.flatMap((x) => [...exposedNames(x)]));
      return missing().length === 0 ? true : undefined;
    },
    180_000,
  ).catch(() => undefined);

  t.deepEqual(
    missing().map((n) => `${n} (named by ${wanted.get(n)})`),
    [],
    'metrics named by deploy/monitoring but exported by no service',
  );
  const unmatched = [...patterns.keys()].filter(
    (re) => !patternsAllowedToMatchNothing.has(re) && ![...exposed].some((n) => new RegExp(`^(?:${re})$`).test(n)),
  );
  t.deepEqual(unmatched, [], 'name patterns that match no exported metric');
});
