// plainJsonBody (http/json-body.ts) against express.json itself: for every body, the same parsed value or the same
// error (status and type), whether it was read by the plain path or handed to express.json. In-process, no stack.
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import anyTest, { type TestFn } from 'ava';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { plainJsonBody } from '../../src/http/json-body.ts';

const limitBytes = 64;

interface Ctx {
  url: string;
  close: () => Promise<void>;
  fallbacks: { count: number };
}
const test = anyTest as TestFn<Ctx>;

test.before(async (t) => {
  const json = express.json({ limit: limitBytes, strict: true, type: 'application/json' });
  const fallbacks = { count: 0 };
  const counted: RequestHandler = (req, res, next) => {
    fallbacks.count++;
    json(req, res, next);
  };
  const app = express();
  const answer: RequestHandler = (req, res) => {
    res.json({ body: req.body === undefined ? 'undefined' : req.body });
  };
  const errors: ErrorRequestHandler = (err, _req, res, _next) => {
    res.status(299).json({ status: err.status, type: err.type });
  };
  app.post('/plain', plainJsonBody(limitBytes, counted), answer);
  app.post('/reference', json, answer);
  app.use(errors);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.context = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
    fallbacks,
  };
});
test.after.always(async (t) => {
  await t.context.close();
});

async function both(t: { context: Ctx }, headers: Record<string, string>, body: Buffer | string) {
  const bytes = typeof body === 'string' ? body : new Uint8Array(body);
  const send = async (path: string) => {
    const res = await fetch(`${t.context.url}${path}`, { method: 'POST', headers, body: bytes });
    return { status: res.status, json: await res.json() };
  };
  return { plain: await send('/plain'), reference: await send('/reference') };
}

const plainCases: [string, Buffer | string][] = [
  ['an object', '{"optionId":"a"}'],
  ['an array', '[1,2]'],
  ['an empty body', ''],
  ['whitespace then an object', ' \n\t{"a":1}'],
  ['a BOM then an object', '\ufeff{"a":1}'],
  ['bad JSON', '{"a":'],
  ['a string (refused: strict)', '"a"'],
  ['a number (refused: strict)', '1'],
  ['only whitespace', '   '],
  ['invalid UTF-8 in a string', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])],
];
for (const [name, body] of plainCases) {
  for (const type of ['application/json', 'application/json; charset=UTF-8']) {
    test.serial(`${name}, ${type}: read on the plain path, the same outcome as express.json`, async (t) => {
      const before = t.context.fallbacks.count;
      const { plain, reference } = await both(t, { 'content-type': type }, body);
      t.deepEqual(plain, reference);
      t.is(t.context.fallbacks.count, before, 'not handed to express.json');
    });
  }
}

const fallbackCases: [string, Record<string, string>, Buffer | string][] = [
  ['gzip', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync('{"a":1}')],
  ['another charset', { 'content-type': 'application/json; charset=latin1' }, '{"a":1}'],
  ['another type', { 'content-type': 'text/plain' }, '{"a":1}'],
  ['a type with other parameters', { 'content-type': 'application/json; foo=bar' }, '{"a":1}'],
  ['a body over the limit', { 'content-type': 'application/json' }, `{"a":"${'x'.repeat(limitBytes)}"}`],
];
for (const [name, headers, body] of fallbackCases) {
  test.serial(`${name}: handed to express.json, its outcome`, async (t) => {
    const before = t.context.fallbacks.count;
    const { plain, reference } = await both(t, headers, body);
    t.deepEqual(plain, reference);
    t.is(t.context.fallbacks.count, before + 1);
  });
}

test.serial(
  'outcomes the table relies on: an object parsed, bad JSON and a non-object are 400 entity.parse.failed',
  async (t) => {
    const ok = await both(t, { 'content-type': 'application/json' }, '{"optionId":"a"}');
    t.deepEqual(ok.plain, { status: 200, json: { body: { optionId: 'a' } } });
    const bad = await both(t, { 'content-type': 'application/json' }, '{"a":');
    t.deepEqual(bad.plain, { status: 299, json: { status: 400, type: 'entity.parse.failed' } });
    const scalar = await both(t, { 'content-type': 'application/json' }, '1');
    t.deepEqual(scalar.plain, { status: 299, json: { status: 400, type: 'entity.parse.failed' } });
    const empty = await both(t, { 'content-type': 'application/json' }, '');
    t.deepEqual(empty.plain, { status: 200, json: { body: {} } });
  },
);
