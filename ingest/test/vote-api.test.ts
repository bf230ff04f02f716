import { randomUUID } from 'node:crypto';
import { createPoll, pollClosed, readTopic } from '@votestream/devstack';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import anyTest, { type TestFn } from 'ava';
import { type IngestHandle, startIngest } from '../src/index.ts';
import { ballot, forgedChallenge, silent, solvedChallenge, type TestEnv, testEnv, vote } from './helpers.ts';

const test = anyTest as TestFn<{
  env: TestEnv;
  ingest: IngestHandle;
  url: string;
  cleanup: (() => Promise<unknown>)[];
}>;

test.before(async (t) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  t.context.cleanup = cleanup;
  const env = await testEnv((fn) => cleanup.push(fn));
  const ingest = await startIngest(env.config, { logger: silent });
  cleanup.unshift(() => ingest.close());
  Object.assign(t.context, { env, ingest, url: ingest.url });
});
test.after.always(async (t) => {
  for (const fn of t.context.cleanup ?? []) await fn();
});

test('a vote with a valid token and a solved challenge is accepted (202) and is in the votes topic', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const voterId = `voter-${randomUUID()}`;
  const res = await vote(url, pollId, {
    token: await env.voter(voterId),
    optionId: 'b',
    altcha: await solvedChallenge(url, await env.voter(voterId), pollId),
    headers: { 'x-device-id': 'device-7', 'user-agent': 'votestream-test' },
  });
  t.is(res.status, 202);
  t.is(res.body.status, 'accepted');
  t.is(res.body.pollId, pollId);
  t.is(res.body.optionId, 'b');
  const serde = await createAvroSerde({ registryUrl: env.config.schemaRegistryUrl, records: ['VoteCast'] });
  const decode = serde.decoder('VoteCast');
  const records = await readTopic<VoteCast>(`${env.prefix}votes`, decode);
  const record = records.find((v) => v.voteId === res.body.voteId);
  t.truthy(record);
  t.is(record?.voterId, voterId);
  t.is(record?.optionId, 'b');
  t.is(record?.evidence.challenge, 'SOLVED');
  t.is(record?.evidence.deviceId, 'device-7');
  t.is(record?.evidence.networkPrefix, '127.0.0.0/24');
});

test('GET /v1/polls/{pollId} returns the poll with status open; unknown poll is 404 poll_not_found', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const res = await fetch(`${url}/v1/polls/${pollId}`);
  t.is(res.status, 200);
  const poll = await res.json();
  t.is(poll.status, 'open');
  t.deepEqual(poll.options, [
    { id: 'a', label: 'Alice' },
    { id: 'b', label: 'Bob' },
  ]);
  t.is(poll.closesAt, null);
  const missing = await fetch(`${url}/v1/polls/p-does-not-exist`);
  t.is(missing.status, 404);
  t.is(missing.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  t.is((await missing.json()).code, 'poll_not_found');
});

test('creating a poll twice is 409 poll_exists; a voter token cannot create polls (403); bad input is 400', async (t) => {
  const { env, url } = t.context;
  const admin = await env.admin();
  const { pollId } = await createPoll(url, admin);
  const post = (token: string, body: unknown) =>
    fetch(`${url}/v1/polls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const again = await post(admin, {
    pollId,
    title: 'x',
    options: [
      { id: 'a', label: 'A' },
      { id: 'b', label: 'B' },
    ],
  });
  t.is(again.status, 409);
  t.is((await again.json()).code, 'poll_exists');
  const asVoter = await post(await env.voter(), {
    title: 'x',
    options: [
      { id: 'a', label: 'A' },
      { id: 'b', label: 'B' },
    ],
  });
  t.is(asVoter.status, 403);
  t.is(asVoter.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  t.is((await asVoter.json()).code, 'forbidden');
  const unauthenticated = await fetch(`${url}/v1/polls`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  t.is(unauthenticated.status, 401);
  t.is((await unauthenticated.json()).code, 'unauthenticated');
  for (const bad of [
    { title: 'one option', options: [{ id: 'a', label: 'A' }] },
    {
      title: 'dup',
      options: [
        { id: 'a', label: 'A' },
        { id: 'a', label: 'B' },
      ],
    },
    {
      title: 'bad id',
      pollId: 'UPPER',
      options: [
        { id: 'a', label: 'A' },
        { id: 'b', label: 'B' },
      ],
    },
    {
      title: 'x',
      options: [
        { id: 'a', label: 'A' },
        { id: 'b', label: 'B' },
      ],
      extra: 1,
    },
    {
      title: 'x',
      options: [
        { id: 'a', label: 'A' },
        { id: 'b', label: 'B' },
      ],
      opensAt: 'yesterday',
    },
    {
      options: [
        { id: 'a', label: 'A' },
        { id: 'b', label: 'B' },
      ],
    },
  ]) {
    const res = await post(admin, bad);
    t.is(res.status, 400, JSON.stringify(bad));
    t.is((await res.json()).code, 'invalid_body');
  }
});

test('a close takes effect POLL_CLOSE_LEAD_MS after the request; a closed poll refuses votes with 409 poll_closed; a scheduled one with 409 poll_not_open', async (t) => {
  const { env, url } = t.context;
  const admin = await env.admin();
  const { pollId } = await createPoll(url, admin);
  t.is(env.config.pollCloseLeadMs, 1000);
  const before = Date.now();
  const close = await fetch(`${url}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
  });
  const after = Date.now();
  t.is(close.status, 200);
  const closesAt = Date.parse((await close.json()).closesAt);
  t.true(closesAt >= before + env.config.pollCloseLeadMs && closesAt <= after + env.config.pollCloseLeadMs);
  // A second close keeps the first close time.
  const again = await fetch(`${url}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
  });
  t.is(again.status, 200);
  t.is(Date.parse((await again.json()).closesAt), closesAt);
  await pollClosed(url, pollId);
  const closed = await vote(url, pollId, await ballot(url, pollId, await env.voter()));
  t.is(closed.status, 409);
  t.is(closed.body.code, 'poll_closed');
  const future = await createPoll(url, admin, { opensAt: new Date(Date.now() + 3600_000).toISOString() });
  t.is(future.status, 'scheduled');
  const early = await vote(url, future.pollId, await ballot(url, future.pollId, await env.voter()));
  t.is(early.status, 409);
  t.is(early.body.code, 'poll_not_open');
  const closeMissing = await fetch(`${url}/v1/polls/p-nope/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
  });
  t.is(closeMissing.status, 404);
  t.is((await closeMissing.json()).code, 'poll_not_found');
});

test('bad input table: every malformed vote gets its exact status and code', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const token = await env.voter();
  const cases: [string, Parameters<typeof vote>[2] & { pollId?: string }, number, string][] = [
    ['malformed JSON', { token, body: '{"optionId": ' }, 400, 'invalid_body'],
    [
      'oversized JSON',
      { token, body: JSON.stringify({ optionId: 'a', pad: 'x'.repeat(10_000) }) },
      400,
      'invalid_body',
    ],
    ['unknown field', { token, body: JSON.stringify({ optionId: 'a', extra: true }) }, 400, 'invalid_body'],
    ['wrong type', { token, body: JSON.stringify({ optionId: 7 }) }, 400, 'invalid_body'],
    ['array body', { token, body: '[]' }, 400, 'invalid_body'],
    ['missing Idempotency-Key', { token, idempotencyKey: '' }, 400, 'invalid_body'],
    ['unknown option', { token, optionId: 'zzz' }, 400, 'unknown_option'],
    ['unknown poll', { token, pollId: 'p-unknown' }, 404, 'poll_not_found'],
    ['no challenge', { token, altcha: null }, 403, 'challenge_required'],
    ['garbage challenge', { token, altcha: 'bm90LWpzb24=' }, 403, 'challenge_failed'],
  ];
  for (const [name, o, status, code] of cases) {
    const res = await vote(url, o.pollId ?? pollId, o);
    t.is(res.status, status, name);
    t.is(res.body?.code, code, name);
  }
  const forged = await vote(url, pollId, { token, altcha: await forgedChallenge() });
  t.is(forged.status, 403);
  t.is(forged.body.code, 'challenge_failed');
});

test('a replayed idempotency key with the same body returns the original answer; with another body 422', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const token = await env.voter();
  const altcha = await solvedChallenge(url, token, pollId);
  const key = randomUUID();
  const first = await vote(url, pollId, { token, altcha, idempotencyKey: key, optionId: 'a' });
  t.is(first.status, 202);
  const replay = await vote(url, pollId, { token, altcha, idempotencyKey: key, optionId: 'a' });
  t.is(replay.status, 202);
  t.deepEqual(replay.body, first.body);
  const reused = await vote(url, pollId, { token, altcha, idempotencyKey: key, optionId: 'b' });
  t.is(reused.status, 422);
  t.is(reused.body.code, 'idempotency_key_reused');
  const second = await vote(url, pollId, { token, altcha: await solvedChallenge(url, token, pollId), optionId: 'b' });
  t.is(second.status, 409);
  t.is(second.body.code, 'already_voted');
  t.is(second.body.voteId, first.body.voteId);
});

test('the same solved challenge sent 50 times at once by 50 voters is accepted once', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const tokens = await Promise.all(Array.from({ length: 50 }, () => env.voter()));
  const altcha = await solvedChallenge(url, tokens[0] as string, pollId);
  const results = await Promise.all(tokens.map((token) => vote(url, pollId, { token, altcha })));
  t.is(results.filter((r) => r.status === 202).length, 1);
  const refused = results.filter((r) => r.status !== 202);
  t.is(refused.length, 49);
  t.true(refused.every((r) => r.status === 403 && r.body.code === 'challenge_failed'));
});

test('19 concurrent votes from one voter: exactly one 202; the others 409 already_voted with its voteId, or 503 while it is undecided', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const token = await env.voter();
  // 20 challenges: CHALLENGE_VOTER_MAX per minute. 19 votes at once, one more after.
  const challenges = await Promise.all(Array.from({ length: 20 }, () => solvedChallenge(url, token, pollId)));
  const results = await Promise.all(challenges.slice(0, 19).map((altcha) => vote(url, pollId, { token, altcha })));
  const accepted = results.filter((r) => r.status === 202);
  t.is(accepted.length, 1);
  const voteId = accepted[0]?.body.voteId;
  const others = results.filter((r) => r.status !== 202);
  t.is(others.length, 18);
  // Before the first one's Kafka ack nobody knows whether it will count: "come back" (503), never a second 202.
  t.true(
    others.every(
      (r) =>
        (r.status === 409 && r.body.code === 'already_voted' && r.body.voteId === voteId) ||
        (r.status === 503 && r.body.code === 'unavailable' && Number(r.headers.get('retry-after')) >= 1),
    ),
    JSON.stringify(others.map((r) => [r.status, r.body.code])),
  );
  const later = await vote(url, pollId, { token, altcha: challenges[19] });
  t.deepEqual([later.status, later.body.code, later.body.voteId], [409, 'already_voted', voteId]);
});

test('the challenge endpoint returns a signed, expiring ALTCHA challenge', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const res = await fetch(`${url}/v1/challenge?pollId=${pollId}`, {
    headers: { authorization: `Bearer ${await env.voter()}` },
  });
  t.is(res.status, 200);
  const c = await res.json();
  t.is(c.parameters.algorithm, 'SHA-256');
  t.is(typeof c.signature, 'string');
  t.true(c.parameters.expiresAt > Date.now() / 1000);
});

test('health, readiness, metrics and the OpenAPI document are served', async (t) => {
  const { url } = t.context;
  t.is((await fetch(`${url}/healthz`)).status, 200);
  const ready = await fetch(`${url}/readyz`);
  t.is(ready.status, 200);
  t.deepEqual(await ready.json(), { ready: true });
  const metrics = await (await fetch(`${t.context.ingest.metricsUrl}/metrics`)).text();
  t.true(metrics.includes('ingest_votes_total'));
  t.true(metrics.includes('ingest_produce_batch_messages'));
  const spec = await (await fetch(`${url}/openapi.json`)).json();
  t.is(spec.openapi, '3.1.0');
  t.truthy(spec.paths['/v1/polls/{pollId}/votes'].post.responses['503']);
  const unknown = await fetch(`${url}/nope`);
  t.is(unknown.status, 404);
  t.is(unknown.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  t.is((await unknown.json()).code, 'not_found');
});
