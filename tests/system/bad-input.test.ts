// Issue 12, item 2: no 500 for client errors. A generated (fixed seed, so every run sends the same requests) stream
// of bad requests over bodies, headers, tokens, proofs of work, paths, methods, encodings and HTTP framing goes to
// a real ingest process on the real stack, one request per connection, written as raw bytes (so that NUL bytes,
// oversized headers and broken framing reach the server as sent). Asserted: no 5xx but 503; every error is
// problem+json with a code from ingest's problem table and the HTTP status in the body; nothing refused reaches
// the votes topic (read to its end offsets), no poll is created; the process stays alive, healthy and ready, and
// its resident memory stays bounded. Counts by status and code are logged.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import {
  createPoll,
  createTopics,
  devPrivateKeyPem,
  devToken,
  repoRoot,
  stack,
  startPipelineService,
  uniqueId,
} from '@votestream/devstack';
import { mintToken, problemCodes } from '@votestream/ingest';
import { createKafka, createLogger, topicNames } from '@votestream/runtime';
import { type AltchaChallenge, encodeAltchaPayload, solveAltcha } from '@votestream/sdk';
import test from 'ava';

const REQUESTS = 5000;
const SEED = 0x5eed_0012;
const CONCURRENCY = 12;

/** mulberry32: a small deterministic PRNG, so the same seed sends the same requests. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick<T>(xs: readonly T[]): T {
      return xs[Math.floor(next() * xs.length)] as T;
    },
    chance: (p: number) => next() < p,
    bytes(n: number): Buffer {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}
type Rng = ReturnType<typeof prng>;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One HTTP/1.1 exchange on its own connection: writes `raw`, reads until the server closes. */
function exchange(port: number, raw: Buffer): Promise<Answer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(), 20_000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks)));
    });
    socket.write(raw);
  });
}

function parseAnswer(data: Buffer): Answer | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = data.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.subarray(at, eol).toString(), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body };
}

function request(method: string, path: string, headers: [string, string | Buffer][], body: Buffer | null): Buffer {
  const head: Buffer[] = [Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`)];
  for (const [k, v] of headers)
    head.push(Buffer.from(`${k}: `), Buffer.isBuffer(v) ? v : Buffer.from(v), Buffer.from('\r\n'));
  if (body !== null) head.push(Buffer.from(`Content-Length: ${body.length}\r\n`));
  head.push(Buffer.from('\r\n'));
  if (body !== null) head.push(body);
  return Buffer.concat(head);
}

test('generated bad input: never a 5xx but 503, always problem+json with a known code, nothing produced, process healthy', async (t) => {
  t.timeout(5 * 60_000);
  const id = uniqueId('bad');
  const prefix = `${id}.`;
  const topics = topicNames(prefix);
  const privateKeyPem = devPrivateKeyPem();
  const logger = createLogger('bad-input-test', 'warn');
  const kafka = createKafka({ clientId: 'bad-input-test', brokers: stack.kafkaBrokers, logger });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  t.teardown(await createTopics(prefix));

  const {
    process: ingest,
    port,
    url: api,
  } = await startPipelineService('ingest', {
    env: {
      TOPIC_PREFIX: prefix,
      REDIS_PREFIX: `${id}:`,
      ALTCHA_MAX_NUMBER: '200',
      RATE_NETWORK_POINTS: '1000000',
      // Every request comes from 127.0.0.1: keep the network's proof-of-work difficulty flat.
      CHALLENGE_NETWORK_BASELINE: '1000000',
      LOG_LEVEL: 'warn',
    },
    logDir: join(repoRoot, 'test-results/bad-input-logs'),
  });
  t.teardown(() => ingest.stop());
  const rssMb = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${ingest.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

  const pollId = `p-${id}`;
  await createPoll(api, await devToken(`${pollId}-admin`, { admin: true }), { pollId, options: ['a', 'b'] });

  const { privateKey: otherKey } = generateKeyPairSync('ed25519');
  const forgedPem = otherKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  /** A challenge for this voter in this poll (challenges are bound to both), solved like the SDK does. */
  const solved = async (voterId: string) => {
    const token = await mintToken({ privateKeyPem, sub: voterId });
    const res = await fetch(`${api}/v1/challenge?pollId=${pollId}`, { headers: { authorization: `Bearer ${token}` } });
    const challenge = (await res.json()) as AltchaChallenge;
    return encodeAltchaPayload(challenge, await solveAltcha(challenge));
  };
  const b64 = (r: Rng, n: number) => r.bytes(n).toString('base64url');

  const tokens = async (r: Rng, voterId: string): Promise<string | null> => {
    switch (r.int(9)) {
      case 0:
        return null;
      case 1:
        return `Bearer ${b64(r, r.int(200))}`;
      case 2:
        return `Bearer ${await mintToken({ privateKeyPem: forgedPem, sub: voterId })}`;
      case 3:
        return `Bearer ${await mintToken({ privateKeyPem, sub: voterId, expiresAtS: 1000 })}`;
      case 4: {
        const tok = await mintToken({ privateKeyPem, sub: voterId });
        return `Bearer ${tok.slice(0, r.int(tok.length))}`;
      }
      case 5:
        return `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"sub":"${voterId}"}`).toString('base64url')}.`;
      case 6:
        return r.pick(['Basic dXNlcjpwYXNz', 'Bearer', 'bearer', '', 'Bearer  x.y.z', `Bearer ${'a'.repeat(8000)}`]);
      default:
        return `Bearer ${await mintToken({ privateKeyPem, sub: voterId })}`;
    }
  };
  const altchas = async (r: Rng, voterId: string): Promise<string | null> => {
    switch (r.int(8)) {
      case 0:
        return null;
      case 1:
        return b64(r, r.int(300));
      case 2:
        return Buffer.from(
          JSON.stringify({ challenge: r.pick([null, 1, 'x', {}, []]), solution: r.pick([null, {}, 7]) }),
        ).toString('base64');
      case 3:
        return Buffer.from('{"challenge":').toString('base64');
      case 4:
        return r.pick(['', '%%%', 'null', Buffer.from('[]').toString('base64')]);
      default:
        return solved(voterId);
    }
  };
  const bodies = (r: Rng): Buffer => {
    switch (r.int(12)) {
      case 0:
        return r.bytes(r.int(600));
      case 1:
        return Buffer.from(
          JSON.stringify({ optionId: r.pick([1, null, [], {}, '', 'c', 'A', 'a'.repeat(200), '\u0000']) }),
        );
      case 2:
        return Buffer.from(JSON.stringify({ optionId: 'a', castAt: r.pick([-1, 'now', 1e300, 1.5, null, {}]) }));
      case 3:
        return Buffer.from(`${'['.repeat(r.int(5000))}`);
      case 4:
        return Buffer.from(JSON.stringify({ optionId: 'a', pad: 'x'.repeat(r.int(20_000)) }));
      case 5:
        return Buffer.from(
          r.pick(['', 'null', '[]', '"a"', '1', '{', '{"optionId":"a"', '{"optionId":"a"}}', '\u00ff\u00fe']),
        );
      case 6:
        return Buffer.from('{"optionId":"a","extra":true,"__proto__":{"polluted":1},"constructor":{"prototype":{}}}');
      default:
        return Buffer.from(JSON.stringify({ optionId: r.pick(['a', 'b']) }));
    }
  };
  const paths = (r: Rng): string => {
    const voteish = `/v1/polls/${pollId}/votes`;
    switch (r.int(14)) {
      case 0:
        return r.pick([
          '/v1/polls/%ff',
          '/v1/polls/%',
          '/v1/polls/%zz',
          '/v1/polls/%ff/votes',
          '/v1/polls/%/votes',
          '/v1/polls/%zz/results',
          '/v1/polls/%E0%A4%A/votes/me',
          '/v1/polls/%c0%af/close',
        ]);
      case 1:
        return `/v1/polls/${encodeURIComponent(b64(r, r.int(80)))}/votes`;
      case 2:
        return r.pick([
          '/',
          '//',
          '/v1',
          '/v1/polls/',
          '/v1/polls//votes',
          '/v1/polls/..%2f..%2fetc/votes',
          '/%00',
          '/v1/polls/%00/votes',
          `/${'a'.repeat(9000)}`,
        ]);
      case 3:
        return `${voteish}?${b64(r, r.int(100))}=%ff&x=%`;
      case 4:
        return r.pick([
          `/v1/polls/${pollId}`,
          `/v1/polls/${pollId}/results`,
          `/v1/polls/${pollId}/votes/me`,
          `/v1/polls/${pollId}/close`,
          '/v1/polls',
          '/v1/challenge',
          '/openapi.json',
        ]);
      default:
        return voteish;
    }
  };
  const methods = (r: Rng) =>
    r.chance(0.8)
      ? 'POST'
      : r.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'FOO', 'post', 'M-SEARCH', 'PROPFIND']);
  const encode = (r: Rng, body: Buffer): { headers: [string, string][]; body: Buffer } => {
    switch (r.int(10)) {
      case 0: {
        const enc = r.pick(['gzip', 'deflate', 'br']);
        return { headers: [['Content-Encoding', enc]], body }; // claims compressed, is not
      }
      case 1: {
        const enc = r.pick(['gzip', 'deflate', 'br'] as const);
        const z = enc === 'gzip' ? gzipSync(body) : enc === 'deflate' ? deflateSync(body) : brotliCompressSync(body);
        return { headers: [['Content-Encoding', enc]], body: z.subarray(0, Math.max(1, r.int(z.length))) }; // truncated
      }
      case 2:
        return {
          headers: [['Content-Encoding', r.pick(['compress', 'x-foo', 'gzip, br', 'identity, gzip', 'zstd'])]],
          body,
        };
      case 3:
        return { headers: [['Content-Encoding', 'gzip']], body: gzipSync(body) };
      case 4:
        return { headers: [['Content-Encoding', 'br']], body: brotliCompressSync(body) };
      default:
        return { headers: [], body };
    }
  };
  const contentTypes = (r: Rng): string | null =>
    r.chance(0.85)
      ? 'application/json'
      : r.pick([
          null,
          'text/plain',
          'application/json; charset=utf-16',
          'application/json; charset=latin1',
          'multipart/form-data; boundary=x',
          'application/x-www-form-urlencoded',
          '*/*',
          '',
        ]);
  const idemKeys = (r: Rng): string | Buffer | null => {
    switch (r.int(10)) {
      case 0:
        return null;
      case 1:
        return r.pick(['short', 'x'.repeat(129), '', 'ключ-ключ-ключ', 'with space key']);
      case 2:
        return Buffer.from([0x6b, 0x65, 0x79, 0x2d, 0xff, 0xfe, 0x80, 0x31, 0x32, 0x33]); // obs-text bytes
      default:
        return randomUUID();
    }
  };
  /** Framing and header bytes Node's parser itself refuses (its clientError). */
  const framing = (r: Rng): Buffer => {
    const voteish = `/v1/polls/${pollId}/votes`;
    switch (r.int(12)) {
      case 0:
        return Buffer.concat([
          Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Device-Id: a`),
          Buffer.from([0]),
          Buffer.from('b\r\n\r\n'),
        ]);
      case 1:
        return Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(17_000 + r.int(20_000))}\r\n\r\n`);
      case 2:
        return r.bytes(1 + r.int(200));
      case 3:
        return Buffer.from(
          `POST ${voteish} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
        );
      case 4:
        return Buffer.from(
          `POST ${voteish} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        );
      case 5:
        return Buffer.from(`POST ${voteish} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`);
      case 6:
        return Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      case 7:
        return Buffer.concat([
          Buffer.from('GET /v1/polls/'),
          Buffer.from([0xff, 0x20]),
          Buffer.from('x HTTP/1.1\r\nHost: x\r\n\r\n'),
        ]);
      case 8:
        return Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n');
      case 9:
        return Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n');
      case 10:
        return Buffer.from(`POST ${voteish} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}`);
      default:
        return Buffer.from(`GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n`);
    }
  };

  const known = new Set<string>(problemCodes);
  const counts = new Map<string, number>();
  const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  const failures: string[] = [];
  const acceptedVoteIds = new Set<string>();
  let noAnswer = 0;
  let rssAfterWarmUp = 0;
  let rssMax = 0;

  const one = async (i: number) => {
    const r = prng(SEED + i); // one stream per request: the same request i whatever the interleaving
    let raw: Buffer;
    let what: string;
    let head = false;
    if (r.chance(0.1)) {
      raw = framing(r);
      what = 'framing';
    } else {
      const voterId = `${id}-v${i}`;
      const method = methods(r);
      const path = paths(r);
      const headers: [string, string | Buffer][] = [];
      const auth = await tokens(r, voterId);
      if (auth !== null) headers.push(['Authorization', auth]);
      const key = idemKeys(r);
      if (key !== null) headers.push(['Idempotency-Key', key]);
      const altcha = await altchas(r, voterId);
      if (altcha !== null) headers.push(['X-Altcha', altcha]);
      const ct = contentTypes(r);
      if (ct !== null) headers.push(['Content-Type', ct]);
      if (r.chance(0.05)) headers.push([`X-${b64(r, 6)}`, b64(r, r.int(500))]);
      const encoded = encode(r, bodies(r));
      headers.push(...encoded.headers);
      raw = request(method, path, headers, method === 'GET' || method === 'HEAD' ? null : encoded.body);
      what = `${method} ${path.slice(0, 60)}`;
      head = method === 'HEAD';
    }
    const a = await exchange(port, raw);
    if (a === null) {
      noAnswer++;
      failures.push(`${what}: no answer`);
      return;
    }
    const type = a.headers['content-type'] ?? '';
    let code = '';
    if (a.status >= 400 && head) {
      if (!type.startsWith('application/problem+json')) failures.push(`${what}: ${a.status} is ${type}`);
    } else if (a.status >= 400) {
      let body: { code?: string; status?: number } = {};
      try {
        body = JSON.parse(a.body.toString('utf8'));
      } catch {
        failures.push(`${what}: ${a.status} body is not JSON: ${a.body.toString('utf8').slice(0, 80)}`);
      }
      code = body.code ?? '';
      if (!type.startsWith('application/problem+json')) failures.push(`${what}: ${a.status} is ${type}`);
      if (!known.has(code)) failures.push(`${what}: ${a.status} unknown code ${code}`);
      if (body.status !== a.status) failures.push(`${what}: ${a.status} body.status ${body.status}`);
      if (a.status >= 500 && a.status !== 503) failures.push(`${what}: ${a.status} ${code}`);
      if (a.status === 503 && !a.headers['retry-after']) failures.push(`${what}: 503 without Retry-After`);
    }
    if (a.status === 202) {
      const voteId = (JSON.parse(a.body.toString('utf8')) as { voteId: string }).voteId;
      acceptedVoteIds.add(voteId);
    }
    count(`${a.status}${code ? ` ${code}` : ''}`);
    if (i === 500) rssAfterWarmUp = rssMb();
    if (i % 250 === 0) rssMax = Math.max(rssMax, rssMb());
  };

  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REQUESTS; i = next++) await one(i);
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  const rssEnd = rssMb();
  t.log(
    `${REQUESTS} requests in ${seconds.toFixed(1)} s; RSS after warm-up ${rssAfterWarmUp.toFixed(0)} MB, max ${rssMax.toFixed(0)} MB, end ${rssEnd.toFixed(0)} MB`,
  );
  t.log(JSON.stringify(Object.fromEntries([...counts].sort((x, y) => y[1] - x[1]))));
  t.deepEqual(failures.slice(0, 20), [], `${failures.length} failures`);
  t.is(noAnswer, 0);
  const total = [...counts.values()].reduce((x, y) => x + y, 0);
  t.is(total, REQUESTS);
  t.is([...counts.keys()].filter((k) => k.startsWith('500')).length, 0);

  // The process is alive, healthy and ready, and still takes a valid vote.
  t.is(ingest.pid > 0 && (await fetch(`${api}/healthz`)).status, 200);
  t.is((await fetch(`${api}/readyz`)).status, 200);
  const finalVote = await fetch(`${api}/v1/polls/${pollId}/votes`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${await mintToken({ privateKeyPem, sub: `${id}-final` })}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
      'x-altcha': await solved(`${id}-final`),
    },
    body: JSON.stringify({ optionId: 'a' }),
  });
  t.is(finalVote.status, 202);
  acceptedVoteIds.add(((await finalVote.json()) as { voteId: string }).voteId);
  // Memory bounded: what 5,000 bad requests leave behind after the warm-up is small, in absolute terms too.
  t.true(rssEnd - rssAfterWarmUp < 150, `RSS grew ${(rssEnd - rssAfterWarmUp).toFixed(0)} MB after the warm-up`);
  t.true(rssMax < 512, `RSS peaked at ${rssMax.toFixed(0)} MB`);

  // No state change: the votes topic holds exactly the accepted votes, read to its end offsets; one poll.
  const readToEnd = async (topic: string): Promise<Buffer[]> => {
    const ends = await admin.fetchTopicOffsets(topic);
    const remaining = new Map(
      ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]),
    );
    const values: Buffer[] = [];
    if (remaining.size === 0) return values;
    const consumer = kafka.consumer({ groupId: `bad-input-${randomUUID()}`, readUncommitted: false });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (message.value) values.push(message.value);
          const end = remaining.get(partition);
          if (end !== undefined && BigInt(message.offset) + 1n >= end) remaining.delete(partition);
          if (remaining.size === 0) resolve();
        },
      });
    });
    await done;
    await consumer.disconnect();
    return values;
  };
  const votes = await readToEnd(topics.votes);
  t.is(votes.length, acceptedVoteIds.size, 'one record per 202, nothing else');
  for (const voteId of acceptedVoteIds) {
    t.true(
      votes.some((v) => v.includes(voteId)),
      `vote ${voteId} is in the topic`,
    );
  }
  t.is((await readToEnd(topics.polls)).length, 1, 'no poll created by the bad requests');
  t.log(`accepted (valid by chance) votes: ${acceptedVoteIds.size}`);
});
