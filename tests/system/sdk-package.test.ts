// @votestream/sdk as an app team gets it (issue 10, item 5): `npm pack` builds the JavaScript and .d.ts, a
// scratch project installs the tarball, type-checks against it and votes with it from Node; the browser example
// (sdk/examples/browser, no bundler) loads the installed package in real Chromium, solves the proof of work,
// votes, shows the ballot receipt and follows the live totals over MQTT/WebSockets. Real services throughout.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createPoll,
  devPrivateKeyPem,
  devToken,
  dropKeyspace,
  freePort,
  httpOk,
  migrateKeyspace,
  repoRoot,
  stack,
  startService,
  startVotestream,
  uniqueId,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import test from 'ava';
import { chromium } from 'playwright-core';
import { isolatedSystemEnv, resultsWithTotal } from '../support/votes.ts';

const run = promisify(execFile);

const consumerTs = `import { createVoterClient, type VoteOutcome, type VoterClient } from '@votestream/sdk';
const client: VoterClient = createVoterClient({ apiUrl: 'https://vote.example.com', getToken: () => 'jwt' });
const outcome: Promise<VoteOutcome> = client.castVote('poll', 'option');
// @ts-expect-error castVote takes a poll id and an option id
void client.castVote(1);
void outcome;
`;

const consumerMjs = `import { createVoterClient } from '@votestream/sdk';
const [apiUrl, token, pollId, optionId] = process.argv.slice(2);
const client = createVoterClient({ apiUrl, getToken: () => token });
const outcome = await client.castVote(pollId, optionId);
await client.close();
console.log(JSON.stringify(outcome));
`;

test('the packed SDK installs in a scratch project, type-checks, votes from Node and from the browser example', async (t) => {
  t.timeout(10 * 60_000);
  const id = uniqueId('sdk');
  const keyspace = `ks_${id}`;
  const pollId = `poll-${id}`;
  const privateKeyPem = devPrivateKeyPem();
  const work = await mkdtemp(join(tmpdir(), 'vs-sdk-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // 1. npm pack (its prepack runs tsc: dist/*.js + .d.ts), install the tarball in a project of its own.
  await run('npm', ['pack', '--pack-destination', work], { cwd: join(repoRoot, 'sdk') });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  t.is(tarball, 'votestream-sdk-0.1.0.tgz');
  const app = join(work, 'app');
  mkdirSync(app);
  const rootPackage = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  };
  const typesNode = rootPackage.devDependencies['@types/node'];
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'scratch-voting-app',
      private: true,
      type: 'module',
      dependencies: { '@votestream/sdk': `file:../${tarball}`, '@types/node': typesNode },
    }),
  );
  await run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: app,
    timeout: 5 * 60_000,
  });
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/@votestream/sdk/package.json'), 'utf8')) as {
    private?: boolean;
    exports: Record<string, { types: string; default: string }>;
  };
  t.is(installed.private, undefined);
  t.deepEqual(installed.exports['.'], { types: './dist/index.d.ts', default: './dist/index.js' });
  t.deepEqual(readdirSync(join(app, 'node_modules/@votestream/sdk')).sort(), ['README.md', 'dist', 'package.json']);

  // 2. Its declarations type-check a strict consumer (and reject a wrong call).
  writeFileSync(join(app, 'consumer.ts'), consumerTs);
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2023', 'dom'],
        noEmit: true,
      },
      files: ['consumer.ts'],
    }),
  );
  await run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: app });

  // 3. The system, and a vote through the installed package from Node.
  t.teardown(() => dropKeyspace(keyspace));
  await migrateKeyspace(keyspace);
  const system = await startVotestream({
    prefix: `${id}.`,
    ports: { ingest: await freePort(), projections: await freePort(), streamMetrics: await freePort() },
    logDir: join(repoRoot, `test-results/sdk-package-${id}`),
    env: isolatedSystemEnv(id),
  });
  t.teardown(() => system.stop());
  await createPoll(system.apiUrl, await devToken(`${pollId}-admin`, { admin: true }), {
    pollId,
    title: `Poll ${pollId}`,
    options: ['a', 'b'],
  });
  writeFileSync(join(app, 'vote.mjs'), consumerMjs);
  const nodeToken = await mintToken({ privateKeyPem, sub: `${id}-node-voter` });
  const { stdout } = await run(process.execPath, ['vote.mjs', system.apiUrl, nodeToken, pollId, 'a'], { cwd: app });
  t.is((JSON.parse(stdout) as { kind: string }).kind, 'accepted', stdout);
  await resultsWithTotal(system.apiUrl, pollId, 1);

  // 4. The browser example, served with the installed packages, the vote API on the same origin.
  cpSync(join(repoRoot, 'sdk/examples/browser'), app, { recursive: true });
  const pagePort = await freePort();
  const pageUrl = `http://127.0.0.1:${pagePort}`;
  const server = await startService({
    name: 'example-server',
    command: [process.execPath, 'server.mjs'],
    built: { cwd: app },
    env: { PORT: String(pagePort), API_URL: system.apiUrl, ROOT: app },
    logFile: join(repoRoot, `test-results/sdk-package-${id}/example-server.log`),
    ready: httpOk(pageUrl),
  });
  t.teardown(() => server.stop());
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 600, height: 560 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const browserToken = await mintToken({ privateKeyPem, sub: `${id}-browser-voter` });
  const fragment = new URLSearchParams({ poll: pollId, mqtt: stack.mqttWsUrl, token: browserToken });
  await page.goto(`${pageUrl}/#${fragment}`);
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  await page.waitForSelector('body[data-ready="true"][data-total="1"]', { timeout: 60_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\npage errors: ${errors.join('; ')}\nconsole: ${consoleLines.join('; ')}`);
  });
  t.is(await page.textContent('#title'), `Poll ${pollId}`);
  await page.click('button[data-option="b"]');
  await page.waitForSelector('body[data-outcome="accepted"]', { timeout: 60_000 });
  await page.waitForSelector('body[data-receipt="counted"]', { timeout: 150_000 }).catch(async (err: Error) => {
    throw new Error(`${err.message}\nreceipt shown: ${await page.textContent('#receipt')}; page errors: ${errors}`);
  });
  await page.waitForSelector('body[data-total="2"]', { timeout: 90_000 });
  t.is(await page.textContent('#totals [data-option="a"]'), 'a: 1');
  t.is(await page.textContent('#totals [data-option="b"]'), 'b: 1');
  t.deepEqual(errors, []);
  mkdirSync(join(repoRoot, 'test-results'), { recursive: true });
  await page.screenshot({ path: join(repoRoot, 'test-results/sdk-browser-example.png') });
  t.deepEqual(await resultsWithTotal(system.apiUrl, pollId, 2), { totals: { a: 1, b: 1 }, total: 2 });
});
