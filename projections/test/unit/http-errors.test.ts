// Client errors at projections' HTTP server are RFC 9457 problems with a stable code, never a 500 or Node's bare
// 400/431: a path that is not valid percent-encoding, NUL bytes in a header, oversized headers, broken framing.
// Only the HTTP layer is under test (no read model is touched by these requests).
import { connect } from 'node:net';
import type { ReadModels } from '@votestream/read-models';
import { createLogger } from '@votestream/runtime';
import test from 'ava';
import { createHttpServer } from '../../src/http/server.ts';

function exchange(port: number, raw: Buffer | string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      resolve({
        status: Number(head.split(' ')[1]),
        type: /content-type: ([^\r]*)/i.exec(head)?.[1] ?? '',
        body,
      });
    });
    socket.write(raw);
  });
}

test('bad paths, NUL bytes, oversized headers and broken framing get 4xx problem+json with a stable code', async (t) => {
  const http = createHttpServer({
    readModels: {} as ReadModels,
    mqttWsUrl: 'ws://127.0.0.1:9001',
    apiUrl: '',
    frameAncestors: "'none'",
    limits: { requestTimeoutMs: 10_000, headersTimeoutMs: 5_000, keepAliveTimeoutMs: 4_000, connectionsMax: 64 },
    logger: createLogger('projections-test', 'silent'),
    health: () => ({ ok: true, detail: {} }),
  });
  const { server, port } = await http.listen(0);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const cases: [string, Buffer | string, number, string][] = [
    ['bad escape %ff', 'GET /live/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'invalid_path'],
    ['lone %', 'GET /live/% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'invalid_path'],
    ['bad escape %zz', 'GET /live/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'invalid_path'],
    [
      'NUL in a header value',
      Buffer.concat([
        Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\nX-A: a'),
        Buffer.from([0]),
        Buffer.from('\r\n\r\n'),
      ]),
      400,
      'bad_request',
    ],
    [
      'headers over 16 KB',
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`,
      431,
      'headers_too_large',
    ],
    [
      'two different Content-Lengths',
      'POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}',
      400,
      'bad_request',
    ],
    ['not HTTP', 'hello\r\n\r\n', 400, 'bad_request'],
  ];
  for (const [name, raw, status, code] of cases) {
    const a = await exchange(port, raw);
    t.is(a.status, status, name);
    t.true(a.type.startsWith('application/problem+json'), `${name}: ${a.type}`);
    t.like(JSON.parse(a.body), { status, code }, name);
  }
});
