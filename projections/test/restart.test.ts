import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveTopics } from '@votestream/read-models';
import { withTimeout } from '@votestream/runtime';
import test from 'ava';
import { startProjections } from '../src/index.ts';
import { collect, createWorld, eventually, repoRoot, tally } from './helpers.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A PRIVATE mosquitto with the stack's password file and ACL, no persistence (a restart loses retained messages). */
function privateBroker(t: import('ava').ExecutionContext, port: number) {
  const dir = mkdtempSync(join(tmpdir(), 'vs-mqtt-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings false',
      'user root', // as the stack's broker: the secrets are readable by root only
      'allow_anonymous true',
      `password_file ${repoRoot}.stack/secrets/mosquitto.passwd`,
      `acl_file ${repoRoot}.stack/secrets/mosquitto.acl`,
      'persistence false',
      `listener ${port} 127.0.0.1`,
      'protocol mqtt',
      '',
    ].join('\n'),
  );
  let child: ReturnType<typeof spawn> | null = null;
  const start = () => {
    child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await withTimeout(
      new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      }),
      30_000,
      'the private mosquitto exits after SIGKILL',
    );
  };
  t.teardown(stop);
  return { start, stop };
}

test('versions on the live topic never decrease across a broker restart and a projections restart', async (t) => {
  const world = await createWorld(t, 'proj-restart');
  const port = await freePort();
  const broker = privateBroker(t, port);
  broker.start();
  const url = `mqtt://127.0.0.1:${port}`;
  const pollId = `p-${randomUUID()}`;
  const topic = liveTopics.totals(pollId);
  const subscriber = await eventually(
    () => world.mqttClient(url).catch(() => null),
    (c) => c !== null,
    10_000,
    'private broker',
  );
  const messages = collect(subscriber!);
  await subscriber!.subscribeAsync(topic, { qos: 1 });
  // The subscriber resubscribes itself after the broker restarts (clean session).
  const config = world.config({
    MQTT_URL: url,
    MQTT_RECONNECT_DELAY_MS_MIN: '100',
    MQTT_RECONNECT_DELAY_MS_MAX: '1000',
  });
  let projections = await startProjections(config, { subjectPrefix: world.subjectPrefix, logger: world.logger });
  t.teardown(() => projections.close().catch(() => {}));

  const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => tally(pollId, { a: from + i }));
  const phase1 = batch(1, 10);
  await world.produceTallies(phase1);
  await eventually(
    async () => messages.last(topic)?.version,
    (v) => v === phase1.at(-1)!.version,
    30_000,
    'phase 1',
  );

  // The broker dies (losing its retained messages) while tallies keep coming.
  await broker.stop();
  const phase2 = batch(11, 10);
  await world.produceTallies(phase2);
  await eventually(
    async () => projections.publisher.versionOf(pollId),
    (v) => v === phase2.at(-1)!.version,
    30_000,
    'offered',
  );
  broker.start();
  await eventually(
    async () => messages.last(topic)?.version,
    (v) => v === phase2.at(-1)!.version,
    30_000,
    'after broker restart',
  );

  // Projections restarts: it republishes the latest from Redis, then continues from its committed offsets.
  await projections.close();
  const phase3 = batch(21, 5);
  await world.produceTallies(phase3);
  projections = await startProjections(config, { subjectPrefix: world.subjectPrefix, logger: world.logger });
  await eventually(
    async () => messages.last(topic)?.version,
    (v) => v === phase3.at(-1)!.version,
    30_000,
    'after projections restart',
  );

  // A late subscriber after all that gets the newest retained totals.
  const late = await world.mqttClient(url);
  const lateMessages = collect(late);
  await late.subscribeAsync(topic, { qos: 1 });
  await eventually(
    async () => lateMessages.last(topic)?.version,
    (v) => v === phase3.at(-1)!.version,
    10_000,
    'late retained',
  );

  const seen = messages.of(topic);
  for (let i = 1; i < seen.length; i++) {
    const prev = seen[i - 1]!;
    const cur = seen[i]!;
    t.true(cur.version >= prev.version, `message ${i}: ${cur.version} after ${prev.version}`);
    // The only repeat is a republish of the same state (after a reconnect or restart), never a different body.
    if (cur.version === prev.version) t.deepEqual(cur.body, prev.body);
  }
  t.deepEqual(messages.last(topic)?.body.totals, { a: 25 });
});
