/**
 * subscribeResults against the real Mosquitto of the local stack, over MQTT/WebSockets (port 9001), with
 * projections' credentials publishing the totals (the ACL lets only that user publish).
 */
import { eventually, mqttPublisherPassword, stack, uniqueId } from '@votestream/devstack';
import test from 'ava';
import mqtt, { type MqttClient } from 'mqtt';
import { createVoterClient } from '../src/client.ts';
import type { ResultsStatus, TotalsUpdate } from '../src/results.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';

const mqttWsPort = Number(process.env.MQTT_WS_PORT ?? 9001);

async function publisher(t: { teardown(fn: () => Promise<void>): void }, topics: string[]): Promise<MqttClient> {
  const client = await mqtt.connectAsync(stack.mqttUrl, {
    clientId: uniqueId('sdk-test-pub-'),
    username: 'projections',
    password: mqttPublisherPassword(),
    reconnectPeriod: 0,
  });
  t.teardown(async () => {
    for (const topic of topics) await client.publishAsync(topic, '', { qos: 1, retain: true }); // clear retained
    await client.endAsync();
  });
  return client;
}

const totals = (pollId: string, version: number, a: number, b: number, final = false) =>
  JSON.stringify({ pollId, version, totals: { a, b }, total: a + b, asOf: 1_700_000_000_000 + version, final });

const until = (what: string, check: () => boolean, timeoutMs = 30_000) =>
  eventually(what, async () => (check() ? true : undefined), timeoutMs, 50);

test('a late subscriber gets the retained totals at once, then live ones; stale and malformed messages are dropped', async (t) => {
  const pollId = uniqueId('sdk-poll-');
  const topic = `votestream/polls/${pollId}/totals`;
  const pub = await publisher(t, [topic]);
  await pub.publishAsync(topic, totals(pollId, 5, 3, 2), { qos: 1, retain: true });

  const client = createVoterClient({
    apiUrl: 'http://unused.invalid',
    mqttUrl: `ws://127.0.0.1:${mqttWsPort}`,
    getToken: () => 'unused',
  });
  t.teardown(() => client.close());
  const seen: TotalsUpdate[] = [];
  await client.subscribeResults(pollId, (u) => seen.push(u));
  await until('retained totals', () => seen.length === 1);
  t.deepEqual(seen[0], { pollId, version: 5, totals: { a: 3, b: 2 }, total: 5, asOf: 1_700_000_000_005, final: false });

  await pub.publishAsync(topic, totals(pollId, 4, 1, 1), { qos: 1, retain: true }); // stale: older version
  await pub.publishAsync(topic, '{"not":"totals"}', { qos: 1 }); // malformed
  await pub.publishAsync(topic, totals('another-poll', 99, 1, 1), { qos: 1 }); // wrong poll
  await pub.publishAsync(topic, totals(pollId, 5, 9, 9), { qos: 1 }); // same version again
  await pub.publishAsync(topic, totals(pollId, 7, 6, 4, true), { qos: 1, retain: true });
  await until('version 7', () => seen.length === 2);
  t.deepEqual(
    seen.map((u) => [u.version, u.total, u.final]),
    [
      [5, 5, false],
      [7, 10, true],
    ],
  );
});

test('two subscriptions share one connection; a second subscriber to the same poll gets the latest totals at once', async (t) => {
  const pollId = uniqueId('sdk-poll-');
  const topic = `votestream/polls/${pollId}/totals`;
  const pub = await publisher(t, [topic]);
  await pub.publishAsync(topic, totals(pollId, 1, 1, 0), { qos: 1, retain: true });
  const client = createVoterClient({
    apiUrl: 'http://unused.invalid',
    mqttUrl: `ws://127.0.0.1:${mqttWsPort}`,
    getToken: () => 'unused',
  });
  t.teardown(() => client.close());
  const first: number[] = [];
  const second: number[] = [];
  const s1 = await client.subscribeResults(pollId, (u) => first.push(u.version));
  await until('first subscriber', () => first.length === 1);
  const s2 = await client.subscribeResults(pollId, (u) => second.push(u.version));
  await until('second subscriber', () => second.length === 1);
  await s1.close();
  await pub.publishAsync(topic, totals(pollId, 2, 2, 0), { qos: 1, retain: true });
  await until('version 2 on the second subscriber', () => second.length === 2);
  t.deepEqual(first, [1]);
  t.deepEqual(second, [1, 2]);
  await s2.close();
});

test('after the connection is cut the subscription reconnects by itself and catches up on totals published meanwhile', async (t) => {
  const pollId = uniqueId('sdk-poll-');
  const topic = `votestream/polls/${pollId}/totals`;
  const pub = await publisher(t, [topic]);
  const proxy = await startTcpProxy(mqttWsPort);
  t.teardown(() => proxy.close());
  await pub.publishAsync(topic, totals(pollId, 1, 1, 0), { qos: 1, retain: true });

  const client = createVoterClient({
    apiUrl: 'http://unused.invalid',
    mqttUrl: `ws://127.0.0.1:${proxy.port}`,
    getToken: () => 'unused',
  });
  t.teardown(() => client.close());
  const seen: number[] = [];
  const statuses: ResultsStatus[] = [];
  await client.subscribeResults(pollId, (u) => seen.push(u.version), { onStatus: (s) => statuses.push(s) });
  await until('version 1', () => seen.length === 1);

  // The network goes away: open connections are cut and new ones go nowhere.
  proxy.mode = 'blackhole';
  proxy.cutAll();
  await until('reconnecting status', () => statuses.includes('reconnecting'));
  await pub.publishAsync(topic, totals(pollId, 2, 1, 1), { qos: 1, retain: true });
  await pub.publishAsync(topic, totals(pollId, 3, 2, 1), { qos: 1, retain: true });

  // The network is back.
  proxy.mode = 'pass';
  proxy.cutAll(); // the half-open attempt stuck in the blackhole
  await until('version 3 after reconnect', () => seen.includes(3), 60_000);
  t.deepEqual(seen, [1, 3]);
  t.is(statuses.filter((s) => s === 'connected').length >= 2, true);
});
