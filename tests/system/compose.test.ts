// compose/docker-compose.yml starts (issue 10, item 3), proven without Docker: each votestream service of the
// compose file runs natively from the image's runtime tree (the Dockerfile's staging + npm ci --omit=dev), with
// exactly the environment the compose file and the Dockerfile's ENV give it (nothing inherited from this
// process), its command, its user, and the secret files of the volumes it mounts. Compose host names become the
// native stack on 127.0.0.1 (same ports, asserted); the only values changed are the ones that keep concurrent
// runs apart (topic prefix, keyspace, Redis prefix, group ids, ports), and each of those must be in the compose
// file already. The image has no local-stack defaults, so a setting the compose file forgets fails the start.
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createPoll,
  devPrivateKeyPem,
  devToken,
  freePort,
  httpOk,
  repoRoot,
  runServiceOnce,
  type ServiceProcess,
  stack,
  stackDir,
  startService,
  uniqueId,
} from '@votestream/devstack';
import { createCqlClient } from '@votestream/runtime';
import test from 'ava';
import { parse } from 'yaml';
import { stagedRuntime } from '../support/runtime.ts';
import { castVote, mqttTotalsWithTotal, resultsWithTotal } from '../support/votes.ts';

const run = promisify(execFile);

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number | boolean | null>;
  volumes?: string[];
  ports?: string[];
}
const compose = parse(readFileSync(join(repoRoot, 'compose/docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const votestreamServices = ['init', 'ingest', 'stream', 'projections'] as const;
type Name = (typeof votestreamServices)[number];

/** The Dockerfile's runtime stage: its ENV, USER and WORKDIR (what `docker run` adds to compose's settings). */
function runtimeStage() {
  const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const m of stage.matchAll(/^ENV (.+)$/gm)) {
    for (const kv of m[1]!.trim().split(/\s+/)) {
      const [k, v] = kv.split('=');
      env[k!] = v!;
    }
  }
  const user = /^USER (\d+):(\d+)$/m.exec(stage);
  return { env, uid: Number(user?.[1]), gid: Number(user?.[2]), workdir: /^WORKDIR (\S+)$/m.exec(stage)?.[1] };
}

/** Compose host name -> the native stack's port for it (the compose file must publish the same one). */
const stackHosts: Record<string, number> = { kafka: 9092, registry: 8081, scylla: 9042, redis: 6379, mosquitto: 1883 };
/** Values this test replaces so that concurrent runs don't collide; the compose file must set each of them. */
const isolated: Record<Name, string[]> = {
  init: ['TOPIC_PREFIX', 'CQL_KEYSPACE'],
  ingest: ['TOPIC_PREFIX', 'CQL_KEYSPACE', 'REDIS_PREFIX', 'INGEST_PORT', 'INGEST_METRICS_PORT'],
  stream: ['TOPIC_PREFIX', 'CQL_KEYSPACE', 'STREAM_APPLICATION_ID', 'STREAM_METRICS_PORT'],
  projections: [
    'TOPIC_PREFIX',
    'CQL_KEYSPACE',
    'REDIS_PREFIX',
    'PROJECTIONS_GROUP_ID',
    'HTTP_PORT',
    'PROJECTIONS_METRICS_PORT',
  ],
};

interface Native {
  env: Record<string, string>;
  /** The service's own port: container port -> the free port it gets here. */
  portMap: Map<number, number>;
}

/**
 * The environment a service gets from compose, on this machine: `${host}:${port}` of a compose service becomes
 * 127.0.0.1:${port}, a path in a mounted volume becomes the same path in that volume's directory here, and the
 * isolated values are replaced.
 */
async function nativeEnv(name: Name, id: string, volumeDirs: Record<string, string>): Promise<Native> {
  const svc = compose.services[name]!;
  const env: Record<string, string> = { ...runtimeStage().env };
  for (const [k, v] of Object.entries(svc.environment ?? {})) env[k] = v === null ? '' : String(v);
  const portMap = new Map<number, number>();
  for (const p of svc.ports ?? []) portMap.set(Number(p.split(':').at(-1)), await freePort());
  const mounts = (svc.volumes ?? []).map((v) => v.split(':')).filter(([src]) => src! in volumeDirs);
  for (const [k, v] of Object.entries(env)) {
    let value = v.replace(/\b([a-z]+):(\d+)\b/g, (whole, host: string, port: string) =>
      host in stackHosts ? `127.0.0.1:${port}` : whole,
    );
    value = value.replace(/127\.0\.0\.1:(\d+)/g, (whole, port: string) => {
      const mapped = portMap.get(Number(port));
      return mapped === undefined ? whole : `127.0.0.1:${mapped}`;
    });
    for (const [src, target] of mounts) {
      if (value === target || value.startsWith(`${target}/`)) value = volumeDirs[src!] + value.slice(target!.length);
    }
    env[k] = value;
  }
  const unique: Record<string, string> = {
    TOPIC_PREFIX: `${id}.`,
    CQL_KEYSPACE: `ks_${id}`,
    REDIS_PREFIX: `${id}:`,
    STREAM_APPLICATION_ID: `${id}-stream`,
    PROJECTIONS_GROUP_ID: `${id}-projections`,
  };
  for (const k of isolated[name]) {
    if (!(k in env)) throw new Error(`compose service ${name} does not set ${k}`);
    if (k in unique) env[k] = unique[k]!;
    else {
      const mapped = portMap.get(Number(env[k]));
      if (mapped === undefined) throw new Error(`compose service ${name}: ${k}=${env[k]} is not a published port`);
      env[k] = String(mapped);
    }
  }
  return { env, portMap };
}

/** What a container would have besides its environment: PATH; HOME and TMPDIR unusable (read-only root fs). */
function baseEnv(app: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: app, TMPDIR: join(app, 'package.json') };
}

function asImageUser() {
  const { uid, gid } = runtimeStage();
  return process.getuid?.() === 0 ? { uid, gid } : {};
}

// One staged runtime tree for the tests of this file (staging + npm ci take a while on a busy machine).
let staged: { app: string; volumeDirs: Record<string, string> } | undefined;
test.before(async () => {
  const app = await stagedRuntime();
  // The compose `secrets` service writes the same files into its volume as compose/native/stack does into
  // .stack/secrets: here the volume is a copy of those.
  const secrets = join(app, '.volumes/secrets');
  cpSync(join(stackDir, 'secrets'), secrets, { recursive: true });
  await run('chmod', ['-R', 'a-w,a+rX', app]);
  staged = { app, volumeDirs: { secrets } };
});
test.after.always(async () => {
  if (staged === undefined) return;
  await run('chmod', ['-R', 'u+w', staged.app]);
  rmSync(staged.app, { recursive: true, force: true });
});

function readyUrl(name: Name, native: Native): string {
  const port = {
    ingest: native.env.INGEST_PORT,
    stream: native.env.STREAM_METRICS_PORT,
    projections: native.env.HTTP_PORT,
    init: undefined,
  }[name];
  return `http://127.0.0.1:${port}/readyz`;
}

async function startComposeService(
  name: Exclude<Name, 'init'>,
  app: string,
  native: Native,
  logDir: string,
): Promise<ServiceProcess> {
  const command = compose.services[name]!.command!;
  if (command[0] !== 'node') throw new Error(`compose service ${name}: command must start with node`);
  return startService({
    name,
    entry: command.at(-1)!,
    env: native.env,
    logFile: join(logDir, `${name}.log`),
    ready: httpOk(readyUrl(name, native)),
    readyTimeoutMs: 120_000,
    built: { cwd: app, baseEnv: baseEnv(app), ...asImageUser() },
    nodeArgs: command.slice(1),
  });
}

test('the compose file builds one image, publishes the native stack ports and gives every votestream service its secrets volume', (t) => {
  const built = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
  t.deepEqual(
    built.map(([n]) => n),
    ['init'],
  );
  for (const name of votestreamServices) {
    t.is(compose.services[name]!.image, 'votestream:local', name);
    t.true(compose.services[name]!.volumes?.includes('secrets:/secrets:ro'), name);
  }
  for (const [host, port] of Object.entries(stackHosts)) {
    t.true(compose.services[host]!.ports?.includes(`${port}:${port}`), `${host} publishes ${port}`);
  }
  t.deepEqual(runtimeStage().workdir, '/app');
});

test('each votestream service of the compose file starts with exactly its compose settings, and a vote is counted', async (t) => {
  t.timeout(10 * 60_000);
  const id = uniqueId('cmp');
  const pollId = `poll-${id}`;
  const logDir = join(repoRoot, `test-results/compose-${id}`);
  const { app, volumeDirs } = staged!;
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ks_${id}`).catch(() => undefined);
    await cql.shutdown();
  });

  // init: the one-shot command, as compose runs it (through the image's sh).
  const init = await nativeEnv('init', id, volumeDirs);
  const initCommand = compose.services.init!.command!;
  const initExit = await runServiceOnce({
    name: 'init',
    command: initCommand,
    env: init.env,
    built: { cwd: app, baseEnv: baseEnv(app), ...asImageUser() },
    logFile: join(logDir, 'init.log'),
  });
  t.is(initExit, 0, `init completed (log: ${join(logDir, 'init.log')})`);
  const tables = await cql.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [`ks_${id}`]);
  t.true(tables.rowLength >= 3, 'init applied the CQL migrations');

  const started: ServiceProcess[] = [];
  t.teardown(async () => {
    for (const p of started.reverse()) await p.stop();
  });
  const envs: Partial<Record<Name, Native>> = {};
  for (const name of ['stream', 'projections', 'ingest'] as const) {
    envs[name] = await nativeEnv(name, id, volumeDirs);
    started.push(await startComposeService(name, app, envs[name]!, logDir));
    // The image's HEALTHCHECK, with the service's HEALTHCHECK_URL.
    await run(process.execPath, ['dist/healthcheck.js'], { cwd: app, env: { ...baseEnv(app), ...envs[name]!.env } });
  }
  const apiUrl = `http://127.0.0.1:${envs.ingest!.env.INGEST_PORT}`;
  const privateKeyPem = devPrivateKeyPem();
  await createPoll(apiUrl, await devToken(`${pollId}-admin`, { admin: true }), {
    pollId,
    title: `Poll ${pollId}`,
    options: ['red', 'blue'],
  });
  for (const [i, option] of ['red', 'blue', 'red'].entries()) {
    const vote = await castVote(apiUrl, privateKeyPem, pollId, `${id}-voter-${i}`, option);
    t.is(vote.status, 202, JSON.stringify(vote.body));
  }
  const expected = { totals: { red: 2, blue: 1 }, total: 3 };
  t.deepEqual(await resultsWithTotal(apiUrl, pollId, 3), expected);
  t.deepEqual(await mqttTotalsWithTotal(stack.mqttUrl, pollId, 3), expected);
});

test('a setting the compose file forgot fails the service at start-up, naming it', async (t) => {
  t.timeout(5 * 60_000);
  const id = uniqueId('cmpf');
  const { app, volumeDirs } = staged!;
  const native = await nativeEnv('stream', id, volumeDirs);
  delete native.env.KAFKA_BROKERS;
  const logDir = join(repoRoot, `test-results/compose-${id}`);
  const err = await t.throwsAsync(startComposeService('stream', app, native, logDir));
  t.regex(err?.message ?? '', /^stream exited with 1 before it was ready/);
  t.regex(
    readFileSync(join(logDir, 'stream.log'), 'utf8'),
    /KAFKA_BROKERS is required: LOCAL_STACK_DEFAULTS=false, so it has no local-stack default/,
  );
});
