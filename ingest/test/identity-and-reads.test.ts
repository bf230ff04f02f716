import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createPoll } from '@votestream/devstack';
import { writeReceipts } from '@votestream/read-models';
import { createCqlClient } from '@votestream/runtime';
import anyTest, { type TestFn } from 'ava';
import { SignJWT, UnsecuredJWT } from 'jose';
import { type IngestHandle, mintToken, startIngest } from '../src/index.ts';
import { migrateTestKeyspace, silent, solvedChallenge, type TestEnv, testEnv, testKeyspace, vote } from './helpers.ts';

const test = anyTest as TestFn<{
  env: TestEnv;
  ingest: IngestHandle;
  url: string;
  cleanup: (() => Promise<unknown>)[];
}>;

test.before(async (t) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  t.context.cleanup = cleanup;
  await migrateTestKeyspace();
  // Tight limits so 429 is reachable with a handful of requests.
  const env = await testEnv((fn) => cleanup.push(fn), { RATE_VOTER_POINTS: '3', RATE_VOTER_DURATION_S: '60' });
  const ingest = await startIngest(env.config, { logger: silent });
  cleanup.unshift(() => ingest.close());
  Object.assign(t.context, { env, ingest, url: ingest.url });
});
test.after.always(async (t) => {
  for (const fn of t.context.cleanup ?? []) await fn();
});

test('bad tokens are 401 unauthenticated: missing, expired, not yet valid, forged, alg none, HS256 confusion, wrong audience and issuer', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const now = Math.floor(Date.now() / 1000);
  const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = env.config.jwtPublicKeyPem as string;
  const tokens: [string, string][] = [
    ['missing', ''],
    ['expired', await mintToken({ privateKeyPem: env.privateKeyPem, sub: 'v1', expiresAtS: now - 120 })],
    ['not yet valid', await mintToken({ privateKeyPem: env.privateKeyPem, sub: 'v1', notBeforeS: now + 600 })],
    ['forged (other key)', await mintToken({ privateKeyPem: other, sub: 'v1' })],
    ['wrong audience', await mintToken({ privateKeyPem: env.privateKeyPem, sub: 'v1', audience: 'someone-else' })],
    ['wrong issuer', await mintToken({ privateKeyPem: env.privateKeyPem, sub: 'v1', issuer: 'evil' })],
    [
      'alg none',
      new UnsecuredJWT({ sub: 'v1' })
        .setIssuer('votestream-dev')
        .setAudience('votestream')
        .setExpirationTime('1h')
        .encode(),
    ],
    [
      'HS256 keyed with the public key (algorithm confusion)',
      await new SignJWT({ sub: 'v1' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('votestream-dev')
        .setAudience('votestream')
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(publicPem)),
    ],
    ['garbage', 'not.a.jwt'],
  ];
  for (const [name, token] of tokens) {
    const res = await vote(url, pollId, { token, altcha: await solvedChallenge(url, await env.voter('v1'), pollId) });
    t.is(res.status, 401, name);
    t.is(res.body.code, 'unauthenticated', name);
  }
});

test('a voter over the per-voter rate limit gets 429 rate_limited with Retry-After', async (t) => {
  const { env, url } = t.context;
  const token = await env.voter();
  const statuses: number[] = [];
  let last: Awaited<ReturnType<typeof vote>> | undefined;
  const windowStartedBy = Date.now();
  for (let i = 0; i < 5; i++) {
    // Validation precedes the limiter, so every request is a valid vote in a fresh poll.
    const { pollId } = await createPoll(url, await env.admin());
    last = await vote(url, pollId, { token, altcha: await solvedChallenge(url, token, pollId) });
    statuses.push(last.status);
  }
  t.deepEqual(statuses, [202, 202, 202, 429, 429]);
  t.is(last?.body.code, 'rate_limited');
  t.is(last?.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  // The 60 s window began with the first vote: Retry-After is what is left of it, in whole seconds.
  const elapsedS = Math.ceil((Date.now() - windowStartedBy) / 1000);
  const retryAfter = Number(last?.headers.get('retry-after'));
  t.true(retryAfter <= 60 && retryAfter >= 60 - elapsedS, `Retry-After ${retryAfter} after ${elapsedS} s`);
});

test('votes/me: 404 no_vote before voting, pending after the 202, counted once the read side has the receipt', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const voterId = `voter-${randomUUID()}`;
  const token = await env.voter(voterId);
  const me = async () => {
    const res = await fetch(`${url}/v1/polls/${pollId}/votes/me`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  };
  const before = await me();
  t.is(before.status, 404);
  t.is(before.body.code, 'no_vote');
  const unauth = await fetch(`${url}/v1/polls/${pollId}/votes/me`);
  t.is(unauth.status, 401);
  const accepted = await vote(url, pollId, { token, optionId: 'b', altcha: await solvedChallenge(url, token, pollId) });
  t.is(accepted.status, 202);
  const pending = await me();
  t.is(pending.status, 200);
  t.deepEqual(pending.body, { voteId: accepted.body.voteId, optionId: 'b', status: 'pending', reason: null });
  // The projector's writer puts the receipt where the read side reads it (what projections does for real).
  const cql = createCqlClient({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1' });
  try {
    await writeReceipts(cql, testKeyspace, [
      {
        vote: { voteId: accepted.body.voteId, pollId, optionId: 'b', voterId, receivedAt: Date.now() },
        outcome: 'COUNTED',
        reason: null,
        countedVoteId: null,
        decidedAt: Date.now(),
      },
    ]);
  } finally {
    await cql.shutdown();
  }
  const counted = await me();
  t.is(counted.status, 200);
  t.deepEqual(counted.body, { voteId: accepted.body.voteId, optionId: 'b', status: 'counted', reason: null });
});

test('results: every option at zero before the first tally; unknown poll 404', async (t) => {
  const { env, url } = t.context;
  const { pollId } = await createPoll(url, await env.admin());
  const res = await fetch(`${url}/v1/polls/${pollId}/results`);
  t.is(res.status, 200);
  const body = await res.json();
  t.deepEqual(
    { ...body, asOf: undefined },
    { pollId, totals: { a: 0, b: 0 }, total: 0, version: 0, asOf: undefined, final: false },
  );
  const missing = await fetch(`${url}/v1/polls/p-missing/results`);
  t.is(missing.status, 404);
  t.is((await missing.json()).code, 'poll_not_found');
});
