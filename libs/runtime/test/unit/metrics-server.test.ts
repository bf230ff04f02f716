// The one metrics server every service uses (startMetricsServer): `/metrics`, and the probes a service without a
// public HTTP port (the stream) answers on it. Pure: a server on port 0, no stack.
import test from 'ava';
import { createMetricsRegistry, startMetricsServer } from '../../src/index.ts';

test('the metrics port answers /metrics and the given probes (GET only); everything else is 404', async (t) => {
  let ready = false;
  const server = await startMetricsServer({
    registry: createMetricsRegistry('probe-test'),
    port: 0,
    host: '127.0.0.1',
    probes: {
      '/healthz': () => [200, { status: 'ok' }],
      '/readyz': () => (ready ? [200, { status: 'ready' }] : [503, { status: 'starting' }]),
    },
  });
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${server.port}`;
  const metrics = await fetch(`${url}/metrics`);
  t.is(metrics.status, 200);
  t.regex(await metrics.text(), /process_cpu_user_seconds_total\{service="probe-test"\}/);
  const live = await fetch(`${url}/healthz`);
  t.is(live.status, 200);
  t.is(live.headers.get('content-type'), 'application/json');
  t.deepEqual(await live.json(), { status: 'ok' });
  const notYet = await fetch(`${url}/readyz`);
  t.is(notYet.status, 503);
  t.deepEqual(await notYet.json(), { status: 'starting' });
  ready = true;
  t.deepEqual(await (await fetch(`${url}/readyz`)).json(), { status: 'ready' });
  t.is((await fetch(`${url}/readyz`, { method: 'POST' })).status, 404);
  t.is((await fetch(`${url}/health`)).status, 404);
  t.is((await fetch(`${url}/nope`)).status, 404);
});
