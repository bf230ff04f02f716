import { connect, type Socket } from 'node:net';
import type { ReadModels } from '@votestream/read-models';
import { createLogger } from '@votestream/runtime';
import test from 'ava';
import { loadProjectionsConfig } from '../src/config.ts';
import { createHttpServer, livePageCsp } from '../src/http/server.ts';

/**
 * The projections HTTP server in-process (its routes read nothing from the stack): headers, the live page's
 * per-response nonce, no /metrics on the public port, and the slow-client limits.
 */
async function serve(env: Record<string, string> = {}) {
  const config = loadProjectionsConfig({ MQTT_PASSWORD: 'x', ...env });
  const http = createHttpServer({
    readModels: {} as ReadModels,
    mqttWsUrl: config.liveMqttWsUrl,
    apiUrl: config.liveApiUrl,
    frameAncestors: config.liveFrameAncestors,
    limits: config.http,
    logger: createLogger('projections-test', 'silent'),
    health: () => ({ ok: true, detail: {} }),
  });
  const { server, port } = await http.listen(0);
  return { server, url: `http://127.0.0.1:${port}`, port };
}

test('the live page gets a fresh CSP nonce per response, on its script and style tags; nosniff everywhere; no /metrics', async (t) => {
  const { server, url } = await serve({ LIVE_FRAME_ANCESTORS: 'https://studio.example.com' });
  t.teardown(() => server.close());
  const nonces: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`${url}/live/p-1`);
    t.is(res.status, 200);
    t.is(res.headers.get('x-content-type-options'), 'nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    const nonce = /'nonce-([^']+)'/.exec(csp)?.[1] as string;
    t.truthy(nonce);
    t.regex(csp, /frame-ancestors https:\/\/studio\.example\.com/);
    const html = await res.text();
    t.is(html.split(`nonce="${nonce}"`).length - 1, 3, 'style, mqtt bundle and inline script carry the nonce');
    t.is((html.match(/<script(?![^>]*nonce=)/g) ?? []).length, 0, 'no script without the nonce');
    nonces.push(nonce);
  }
  t.not(nonces[0], nonces[1]);
  const metrics = await fetch(`${url}/metrics`);
  t.is(metrics.status, 404);
  t.is(metrics.headers.get('x-content-type-options'), 'nosniff');
  t.is((await fetch(`${url}/live/assets/mqtt.min.js`)).headers.get('x-content-type-options'), 'nosniff');
});

test('LIVE_FRAME_ANCESTORS refuses values that could break out of the header', (t) => {
  t.throws(() => loadProjectionsConfig({ MQTT_PASSWORD: 'x', LIVE_FRAME_ANCESTORS: "'none'; script-src *" }), {
    message: /LIVE_FRAME_ANCESTORS/,
  });
  t.is(
    livePageCsp('n', { apiUrl: '', mqttWsUrl: 'wss://live.example.com/mqtt', frameAncestors: "'none'" }).includes(
      "connect-src 'self' wss://live.example.com;",
    ),
    true,
  );
});

test('a slowloris client is cut with 408 on the projections server too', async (t) => {
  const { server, port } = await serve({
    HTTP_KEEP_ALIVE_TIMEOUT_MS: '500',
    HTTP_HEADERS_TIMEOUT_MS: '1500',
    HTTP_REQUEST_TIMEOUT_MS: '2500',
  });
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const started = Date.now();
  const socket: Socket = connect({ host: '127.0.0.1', port });
  let received = '';
  socket.on('data', (d) => {
    received += d.toString();
  });
  socket.on('error', () => {});
  const slow = `GET /live/p-1 HTTP/1.1\r\nHost: x\r\n${'X-Slow: y\r\n'.repeat(400)}\r\n`;
  let i = 0;
  const timer = setInterval(() => {
    if (i < slow.length && !socket.destroyed) socket.write(slow[i++] as string);
  }, 50);
  const closed = await new Promise<boolean>((resolve) => {
    const giveUp = setTimeout(() => resolve(false), 30_000);
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve(true);
    });
  });
  clearInterval(timer);
  socket.destroy();
  t.true(closed, 'never cut');
  t.true(Date.now() - started < 15_000);
  t.regex(received, /^HTTP\/1\.1 408 /);
});
