import { mqttPublisherPassword, stack, uniqueId } from '@votestream/devstack';
import { withTimeout } from '@votestream/runtime';
import test from 'ava';
import mqtt from 'mqtt';

async function firstMessage(url: string, topic: string): Promise<{ payload: string; retain: boolean }> {
  const client = await mqtt.connectAsync(url, {
    clientId: uniqueId('sub-'),
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  try {
    const got = new Promise<{ payload: string; retain: boolean }>((resolve) => {
      client.on('message', (_t, payload, packet) => resolve({ payload: payload.toString(), retain: packet.retain }));
    });
    await client.subscribeAsync(topic, { qos: 1 });
    return await withTimeout(got, 30_000, `a message on ${topic}`);
  } finally {
    await client.endAsync();
  }
}

for (const [transport, url] of [
  ['TCP', stack.mqttUrl],
  ['WebSockets', stack.mqttWsUrl],
] as const) {
  test(`a subscriber over ${transport} that connects after the publish receives the retained message`, async (t) => {
    const topic = `votestream/polls/${uniqueId('stack-')}/totals`;
    const publisher = await mqtt.connectAsync(stack.mqttUrl, {
      clientId: uniqueId('pub-'),
      username: 'projections',
      password: mqttPublisherPassword(),
      reconnectPeriod: 0,
    });
    t.teardown(async () => {
      await publisher.publishAsync(topic, '', { qos: 1, retain: true }); // clear the retained message
      await publisher.endAsync();
    });
    await publisher.publishAsync(topic, '{"version":1}', { qos: 1, retain: true });

    t.deepEqual(await firstMessage(url, topic), { payload: '{"version":1}', retain: true });
  });
}

test('an anonymous client cannot publish to the live totals topics', async (t) => {
  const topic = `votestream/polls/${uniqueId('stack-')}/totals`;
  const publisher = await mqtt.connectAsync(stack.mqttUrl, {
    clientId: uniqueId('pub-'),
    username: 'projections',
    password: mqttPublisherPassword(),
    reconnectPeriod: 0,
  });
  t.teardown(async () => {
    await publisher.publishAsync(topic, '', { qos: 1, retain: true });
    await publisher.endAsync();
  });
  await publisher.publishAsync(topic, 'genuine', { qos: 1, retain: true });

  const intruder = await mqtt.connectAsync(stack.mqttUrl, { clientId: uniqueId('anon-'), reconnectPeriod: 0 });
  // MQTT 3.1.1 has no negative PUBACK: the broker acknowledges and drops a publish the ACL denies.
  await intruder.publishAsync(topic, 'forged', { qos: 1, retain: true });
  await intruder.endAsync();

  t.deepEqual(await firstMessage(stack.mqttUrl, topic), { payload: 'genuine', retain: true });
});
