// The Helm chart's promises, read from `helm template` output (issue 10, item 4): every pod meets the restricted
// Pod Security Standard with a read-only root filesystem; liveness never depends on a dependency (/healthz),
// readiness does (/readyz); preStop delay; a PDB and zone spread per workload; NetworkPolicies; HPA for ingest
// and KEDA lag scaling on the consumer groups the code really uses. scripts/helm-check validates the same
// output against the Kubernetes API schemas and checkov; this file checks what those cannot know.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '@votestream/devstack';
import test from 'ava';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are untyped YAML
type Obj = any;

async function render(...args: string[]): Promise<Obj[]> {
  const { stdout } = await run(
    'bash',
    ['scripts/tools/helm.sh', 'template', 'votestream', 'deploy/helm/votestream', '--namespace', 'votestream', ...args],
    { cwd: repoRoot, maxBuffer: 32 * 1024 * 1024, timeout: 15 * 60_000 },
  );
  return parseAllDocuments(stdout)
    .map((d) => d.toJSON() as Obj)
    .filter((o) => o !== null);
}

const byKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o.kind === kind);
const votestreamWorkloads = ['ingest', 'stream-dedupe', 'stream-tally', 'projections'];

test('every pod meets the restricted Pod Security Standard with a read-only root filesystem and an emptyDir /tmp', async (t) => {
  t.timeout(16 * 60_000);
  const objs = await render('--set', 'serviceMonitor.enabled=true');
  const pods = [...byKind(objs, 'Deployment'), ...byKind(objs, 'Job')];
  t.deepEqual(pods.map((p) => p.metadata.name).sort(), [
    'apicurio',
    'ingest',
    'projections',
    'stream-dedupe',
    'stream-tally',
    'votestream-init',
  ]);
  for (const p of pods) {
    const spec = p.spec.template.spec;
    const name = p.metadata.name;
    t.is(spec.securityContext.runAsNonRoot, true, name);
    t.true(spec.securityContext.runAsUser > 0, name);
    t.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' }, name);
    t.is(spec.hostNetwork, undefined, name);
    for (const c of spec.containers) {
      t.is(c.securityContext.allowPrivilegeEscalation, false, name);
      t.is(c.securityContext.readOnlyRootFilesystem, true, name);
      t.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] }, name);
      const tmp = c.volumeMounts.find((m: Obj) => m.mountPath === '/tmp');
      t.truthy(spec.volumes.find((v: Obj) => v.name === tmp?.name)?.emptyDir, `${name}: /tmp is an emptyDir`);
      t.truthy(c.resources.requests.cpu, name);
      t.truthy(c.resources.requests.memory, name);
    }
  }
});

test('votestream pods: /healthz liveness, /readyz readiness, preStop delay, SECRETS_DIR, zone spread and a PDB each', async (t) => {
  t.timeout(16 * 60_000);
  const objs = await render();
  const pdbs = byKind(objs, 'PodDisruptionBudget');
  for (const name of votestreamWorkloads) {
    const d = byKind(objs, 'Deployment').find((o) => o.metadata.name === name);
    const c = d.spec.template.spec.containers[0];
    t.is(c.livenessProbe.httpGet.path, '/healthz', name);
    t.is(c.readinessProbe.httpGet.path, '/readyz', name);
    t.deepEqual(c.lifecycle.preStop.exec.command, ['sleep', '15'], name);
    t.true(d.spec.template.spec.terminationGracePeriodSeconds > 15, name);
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
    t.is(env.SECRETS_DIR, '/secrets', name);
    t.is(c.volumeMounts.find((m: Obj) => m.name === 'secrets').mountPath, '/secrets', name);
    t.is(c.command[0], 'node', name);
    t.false(c.command.includes('tsx'), name);
    t.is(d.spec.template.spec.topologySpreadConstraints[0].topologyKey, 'topology.kubernetes.io/zone', name);
    t.is(d.spec.template.metadata.labels.app, name, `${name}: the ALB target-group Services select on app`);
    t.truthy(
      pdbs.find((p) => p.spec.selector.matchLabels.app === name),
      `${name} has a PodDisruptionBudget`,
    );
  }
  const ingest = byKind(objs, 'Deployment').find((o) => o.metadata.name === 'ingest');
  const ingestEnv = Object.fromEntries(ingest.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
  t.is(ingestEnv.CLIENT_ADDRESS_SOURCE, 'alb');
  t.is(ingestEnv.INGEST_METRICS_PORT, '9471');
});

test('ingest autoscales on CPU; stream and projections on the consumer lag of the groups the code uses', async (t) => {
  t.timeout(16 * 60_000);
  const objs = await render();
  const hpas = byKind(objs, 'HorizontalPodAutoscaler');
  t.deepEqual(
    hpas.map((h) => h.spec.scaleTargetRef.name),
    ['ingest'],
  );
  const scaled: Record<string, Obj> = Object.fromEntries(
    byKind(objs, 'ScaledObject').map((s) => [s.spec.scaleTargetRef.name, s.spec.triggers[0].metadata]),
  );
  // stream/src/main.ts: `${STREAM_APPLICATION_ID}-dedupe`, `-tally`; projections: `${PROJECTIONS_GROUP_ID}-tallies`.
  t.deepEqual(Object.fromEntries(Object.entries(scaled).map(([k, m]) => [k, [m.consumerGroup, m.topic]])), {
    'stream-dedupe': ['votestream-stream-dedupe', 'votestream.votes'],
    'stream-tally': ['votestream-stream-tally', 'votestream.tally-partials'],
    projections: ['votestream.projections-tallies', 'votestream.tallies'],
  });
  for (const m of Object.values(scaled)) t.is(m.allowIdleConsumers, 'false');
  // KEDA owns the replica count of those Deployments, the HPA ingest's.
  for (const d of byKind(objs, 'Deployment').filter((o) => votestreamWorkloads.includes(o.metadata.name))) {
    t.is(d.spec.replicas, undefined, d.metadata.name);
  }
});

test('NetworkPolicies: the API ports from the VPC only, the metrics ports from the monitoring namespace', async (t) => {
  t.timeout(16 * 60_000);
  const objs = await render('--set', 'network.vpcCidr=10.42.0.0/16');
  const policies = Object.fromEntries(byKind(objs, 'NetworkPolicy').map((p) => [p.metadata.name, p.spec]));
  t.deepEqual(policies['default-deny-ingress'].policyTypes, ['Ingress']);
  t.deepEqual(policies.ingest.ingress, [
    { from: [{ ipBlock: { cidr: '10.42.0.0/16' } }], ports: [{ port: 8080, protocol: 'TCP' }] },
    {
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [{ port: 9471, protocol: 'TCP' }],
    },
  ]);
  t.deepEqual(policies.projections.ingress[1].ports, [{ port: 9472, protocol: 'TCP' }]);
  t.deepEqual(policies['stream-dedupe'].ingress[0].ports, [{ port: 9470, protocol: 'TCP' }]);
});

test('the init Job runs topics, schemas and migrations; on upgrade it is a pre-upgrade hook', async (t) => {
  t.timeout(16 * 60_000);
  const [install, upgrade] = [await render(), await render('--is-upgrade', '--set', 'init.topics=false')];
  const job = byKind(install, 'Job')[0];
  t.is(job.metadata.annotations, undefined);
  t.deepEqual(job.spec.template.spec.containers[0].command, [
    '/usr/bin/tini',
    '--',
    'sh',
    '-c',
    'node dist/topics.js && node schemas/dist/cli/register.js --frozen && node dist/migrate.js',
  ]);
  const hook = byKind(upgrade, 'Job')[0];
  t.is(hook.metadata.annotations['helm.sh/hook'], 'pre-upgrade');
  t.is(
    hook.spec.template.spec.containers[0].command[4],
    'node schemas/dist/cli/register.js --frozen && node dist/migrate.js',
  );
});
