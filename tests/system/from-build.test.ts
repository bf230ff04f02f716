// Production runs the build, not the sources (issue 10, items 1 and 2): the runtime tree the Dockerfile stages
// (scripts/stage-runtime.ts) plus `npm ci --omit=dev` is enough to run the one-shot init steps and the three
// services with plain node, as a non-root user, from a read-only tree, with an unusable TMPDIR (as under
// readOnlyRootFilesystem), with secrets only from SECRETS_DIR. Votes cast through them are counted.
// Needs `npm run build` first (scripts/test runs it before the tests).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createPoll,
  devPrivateKeyPem,
  devToken,
  freePort,
  repoRoot,
  runServiceOnce,
  stack,
  startVotestream,
  uniqueId,
} from '@votestream/devstack';
import { createCqlClient } from '@votestream/runtime';
import test from 'ava';
import { runtimeEntries } from '../../scripts/stage-runtime.ts';
import { asUser, secretsDirFor, stagedRuntime } from '../support/runtime.ts';
import { castVote, isolatedSystemEnv, mqttTotalsWithTotal, resultsWithTotal } from '../support/votes.ts';

const run = promisify(execFile);

test('the build runs init, ingest, stream and projections with plain node from a read-only tree and counts votes', async (t) => {
  t.timeout(10 * 60_000);
  const id = uniqueId('fb');
  const keyspace = `ks_${id}`;
  const pollId = `poll-${id}`;
  const privateKeyPem = devPrivateKeyPem();

  const app = await stagedRuntime();
  t.teardown(() => {
    execFile('chmod', ['-R', 'u+w', app], () => rmSync(app, { recursive: true, force: true }));
  });
  // The image's production dependency set: no test or build tools.
  for (const devOnly of ['tsx', 'typescript', 'ava', 'playwright-core', 'autocannon', '@biomejs/biome']) {
    t.false(existsSync(join(app, 'node_modules', devOnly)), `${devOnly} is not a production dependency`);
  }
  const secrets = secretsDirFor(app, ['dev-jwt-public.pem', 'altcha-hmac.key', 'mqtt-projections.password']);
  await run('chmod', ['-R', 'a-w,a+rX', app]);

  // What a container gets: its own variables only; TMPDIR is a file, so nothing can create a temp dir
  // (tsx dies there with ENOTDIR), and HOME is the read-only tree.
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: app, TMPDIR: join(app, 'package.json') };
  const env = { ...baseEnv, SECRETS_DIR: secrets, TOPIC_PREFIX: `${id}.`, CQL_KEYSPACE: keyspace, LOG_LEVEL: 'warn' };
  // The tree is really read-only for the services' user, and TMPDIR is no directory.
  const probe = `try { require('fs').writeFileSync('probe', 'x'); } catch (e) { console.log(e.code); }
try { require('fs').mkdtempSync(require('path').join(require('os').tmpdir(), 'x')); } catch (e) { console.log(e.code); }`;
  const { stdout } = await run(process.execPath, ['-e', probe], { cwd: app, env: baseEnv, ...asUser });
  t.deepEqual(stdout.trim().split('\n'), ['EACCES', 'ENOTDIR']);
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
  });

  // The init Job's three steps, from the build.
  for (const [step, entry, args] of [
    ['topics', runtimeEntries.topics, []],
    ['schemas', runtimeEntries.schemasRegister, ['--frozen']],
    ['migrate', runtimeEntries.migrate, []],
  ] as const) {
    const exit = await runServiceOnce({
      name: `init-${step}`,
      nodeArgs: ['--enable-source-maps', entry, ...args],
      env: {},
      built: { cwd: app, baseEnv: env, ...asUser },
      logFile: join(repoRoot, `test-results/from-build-${id}/init-${step}.log`),
    });
    t.is(exit, 0, `init step ${step} (log: test-results/from-build-${id}/init-${step}.log)`);
  }
  const tables = await cql.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [keyspace]);
  t.true(tables.rowLength >= 3, `migrations created the tables of ${keyspace}`);

  const system = await startVotestream({
    prefix: `${id}.`,
    ports: { ingest: await freePort(), projections: await freePort(), streamMetrics: await freePort() },
    logDir: join(repoRoot, `test-results/from-build-${id}`),
    built: { cwd: app, baseEnv: env, ...asUser },
    env: isolatedSystemEnv(id),
  });
  t.teardown(() => system.stop());
  for (const p of [system.ingest, system.stream, system.projections]) {
    const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0');
    t.deepEqual(cmdline.slice(1, 3), ['--enable-source-maps', join(app, `${p.name}/dist/main.js`)]);
    if (asUser.uid !== undefined) t.regex(readFileSync(`/proc/${p.pid}/status`, 'utf8'), /^Uid:\s+65534\s/m);
  }

  await createPoll(system.apiUrl, await devToken(`${pollId}-admin`, { admin: true }), {
    pollId,
    title: `Poll ${pollId}`,
    options: ['yes', 'no'],
  });
  const voters = 12;
  for (let i = 0; i < voters; i++) {
    const vote = await castVote(system.apiUrl, privateKeyPem, pollId, `${id}-voter-${i}`, i % 3 === 0 ? 'no' : 'yes');
    t.is(vote.status, 202, JSON.stringify(vote.body));
  }
  const expected = { totals: { yes: 8, no: 4 }, total: voters };
  t.deepEqual(await resultsWithTotal(system.apiUrl, pollId, voters), expected);
  t.deepEqual(await mqttTotalsWithTotal(stack.mqttUrl, pollId, voters), expected);
});
