import { randomBytes, randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { createPoll, eventually, readTopic } from '@votestream/devstack';
import { createKafka } from '@votestream/runtime';
import { createAvroSerde, type PollEvent, type VoteCast } from '@votestream/schemas';
import anyTest, { type TestFn } from 'ava';
import { revocationShardOf } from '../src/auth/revocations.ts';
import { type IngestHandle, mintToken, startIngest } from '../src/index.ts';
import { ballot, silent, type TestEnv, testEnv, type VoteOptions, vote } from './helpers.ts';

/**
 * Issue 17, against a running ingest on the real stack (Kafka, registry, Redis, CQL): each test is the attack
 * the review confirmed, and asserts it no longer works.
 */
interface Instance {
  env: TestEnv;
  ingest: IngestHandle;
  url: string;
}
const test = anyTest as TestFn<{
  /** Behind an "ALB": the test connects from 127.0.0.1, which TRUSTED_PROXY_CIDRS makes the trusted proxy. */
  alb: Instance;
  /**
   * Configured for the ALB (as production), but the test reaches the pod directly, from an address outside
   * TRUSTED_PROXY_CIDRS (default: the VPC's private ranges): its forwarding headers must mean nothing.
   */
  direct: Instance;
  cleanup: (() => Promise<unknown>)[];
}>;

async function start(cleanup: (() => Promise<unknown>)[], env: Record<string, string>): Promise<Instance> {
  const e = await testEnv((fn) => cleanup.push(fn), env);
  const ingest = await startIngest(e.config, { logger: silent });
  cleanup.unshift(() => ingest.close());
  return { env: e, ingest, url: ingest.url };
}

test.before(async (t) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  t.context.cleanup = cleanup;
  const limited = { RATE_NETWORK_POINTS: '2', RATE_NETWORK_DURATION_S: '60' };
  const [alb, direct] = await Promise.all([
    start(cleanup, {
      ...limited,
      CLIENT_ADDRESS_SOURCE: 'alb',
      TRUST_PROXY_HOPS: '1',
      TRUSTED_PROXY_CIDRS: '127.0.0.0/8',
      JWT_MAX_TOKEN_AGE_S: '3600',
      TOKEN_REVOCATIONS_MAX: '48',
      CHALLENGE_VOTER_MAX: '4',
    }),
    start(cleanup, { ...limited, CLIENT_ADDRESS_SOURCE: 'alb', TRUST_PROXY_HOPS: '1' }),
  ]);
  Object.assign(t.context, { alb, direct });
});
test.after.always(async (t) => {
  for (const fn of t.context.cleanup ?? []) await fn();
});

/** A network of its own per test (the ALB instance limits each /24 to 2 votes a minute). */
let networks = 0;
function freshNetwork(): string {
  networks++;
  return `10.${100 + Math.floor(networks / 250)}.${networks % 250}.7`;
}

/** A valid vote by a fresh voter, as the ALB would forward it from `forwardedFor` (its X-Forwarded-For). */
async function voteVia(i: Instance, pollId: string, forwardedFor: string | null, extra: Partial<VoteOptions> = {}) {
  const token = await i.env.voter();
  const headers: Record<string, string> = forwardedFor === null ? {} : { 'x-forwarded-for': forwardedFor };
  const altcha = await challengeVia(i, token, pollId, headers);
  return vote(i.url, pollId, { token, altcha, ...extra, headers: { ...headers, ...extra.headers } });
}

async function challengeVia(i: Instance, token: string, pollId: string, headers: Record<string, string>) {
  const { solveChallenge } = await import('altcha-lib');
  const { deriveKey } = await import('altcha-lib/algorithms/sha');
  const res = await fetch(`${i.url}/v1/challenge?pollId=${pollId}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  if (res.status !== 200) throw new Error(`challenge ${res.status}: ${await res.text()}`);
  const challenge = await res.json();
  const solution = await solveChallenge({ challenge, deriveKey });
  return Buffer.from(JSON.stringify({ challenge, solution })).toString('base64');
}

// ---- 1. client address -------------------------------------------------------------------------------------

test('behind the ALB, a spoofed X-Forwarded-For does not escape the per-network limit (8.8.4.4; 1.1.1.1, 7.7.7.7)', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  const client = '203.0.113.7'; // what the ALB saw and appended
  t.is((await voteVia(alb, pollId, client)).status, 202);
  t.is((await voteVia(alb, pollId, client)).status, 202);
  const third = await voteVia(alb, pollId, client);
  t.is(third.status, 429);
  t.is(third.body.code, 'rate_limited');
  // The attacker writes X-Forwarded-For; the ALB appends the real address after it.
  for (const spoofed of ['8.8.4.4', '1.1.1.1, 7.7.7.7']) {
    const res = await voteVia(alb, pollId, `${spoofed}, ${client}`);
    t.is(res.status, 429, spoofed);
    t.is(res.body.code, 'rate_limited', spoofed);
  }
  // Another network is its own budget, and the record carries the address the ALB saw.
  const other = await voteVia(alb, pollId, '8.8.4.4, 198.51.100.9');
  t.is(other.status, 202);
  const serde = await createAvroSerde({ registryUrl: alb.env.config.schemaRegistryUrl, records: ['VoteCast'] });
  const records = await readTopic<VoteCast>(`${alb.env.prefix}votes`, serde.decoder('VoteCast'));
  t.is(records.find((v) => v.voteId === other.body.voteId)?.evidence.networkPrefix, '198.51.100.0/24');
});

test('a client reaching the pod without the ALB: its X-Forwarded-For is ignored (8.8.4.4; 1.1.1.1, 7.7.7.7)', async (t) => {
  const { direct } = t.context;
  const { pollId } = await createPoll(direct.url, await direct.env.admin());
  t.is((await voteVia(direct, pollId, null)).status, 202);
  t.is((await voteVia(direct, pollId, null)).status, 202);
  for (const spoofed of ['8.8.4.4', '1.1.1.1, 7.7.7.7']) {
    const res = await voteVia(direct, pollId, spoofed);
    t.is(res.status, 429, spoofed);
    t.is(res.body.code, 'rate_limited', spoofed);
  }
});

// ---- 2. proof of work bound to (sub, poll), authenticated, rate-limited ------------------------------------

test('a challenge solved for one voter or one poll is refused for another (403 challenge_failed)', async (t) => {
  const { alb } = t.context;
  const admin = await alb.env.admin();
  const [{ pollId }, { pollId: otherPoll }] = await Promise.all([
    createPoll(alb.url, admin),
    createPoll(alb.url, admin),
  ]);
  const net = { 'x-forwarded-for': freshNetwork() };
  const alice = await alb.env.voter();
  const bob = await alb.env.voter();
  const alicesAltcha = await challengeVia(alb, alice, pollId, net);
  const asBob = await vote(alb.url, pollId, { token: bob, altcha: alicesAltcha, headers: net });
  t.is(asBob.status, 403);
  t.is(asBob.body.code, 'challenge_failed');
  const inOtherPoll = await vote(alb.url, otherPoll, {
    token: alice,
    altcha: alicesAltcha,
    headers: { 'x-forwarded-for': freshNetwork() },
  });
  t.is(inOtherPoll.status, 403);
  t.is(inOtherPoll.body.code, 'challenge_failed');
  // Alice, in the poll it was issued for: accepted.
  const accepted = await vote(alb.url, pollId, {
    token: alice,
    altcha: alicesAltcha,
    headers: { 'x-forwarded-for': freshNetwork() },
  });
  t.is(accepted.status, 202);
});

test('GET /v1/challenge needs a token (401) and a known poll (400/404), and is rate-limited per voter (429)', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  const anonymous = await fetch(`${alb.url}/v1/challenge?pollId=${pollId}`);
  t.is(anonymous.status, 401);
  t.is((await anonymous.json()).code, 'unauthenticated');
  const token = await alb.env.voter();
  const get = (query: string) =>
    fetch(`${alb.url}/v1/challenge${query}`, {
      headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': freshNetwork() },
    });
  const noPoll = await get('');
  t.is(noPoll.status, 400);
  t.is((await noPoll.json()).code, 'invalid_body');
  const unknown = await get('?pollId=p-nope');
  t.is(unknown.status, 404);
  t.is((await unknown.json()).code, 'poll_not_found');
  // CHALLENGE_VOTER_MAX=4 per minute (the two refusals above did not count: they failed before issuing).
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await get(`?pollId=${pollId}`)).status);
  t.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  const limited = await get(`?pollId=${pollId}`);
  t.is((await limited.json()).code, 'rate_limited');
  t.true(Number(limited.headers.get('retry-after')) >= 1);
});

// ---- 3. token age and revocation ---------------------------------------------------------------------------

test('a token without iat, or issued longer ago than JWT_MAX_TOKEN_AGE_S (even with a far exp), is 401', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  const now = Math.floor(Date.now() / 1000);
  const key = alb.env.privateKeyPem;
  const sub = `voter-${randomUUID()}`;
  const cases: [string, string][] = [
    [
      'ten-year token issued 2 h ago',
      await mintToken({ privateKeyPem: key, sub, issuedAtS: now - 7200, ttlS: 10 * 365 * 86400 }),
    ],
    ['no iat', await mintToken({ privateKeyPem: key, sub, issuedAtS: null })],
  ];
  const net = { 'x-forwarded-for': freshNetwork() };
  const altcha = await challengeVia(alb, await alb.env.voter(sub), pollId, net);
  for (const [name, token] of cases) {
    const res = await vote(alb.url, pollId, { token, altcha, headers: net });
    t.is(res.status, 401, name);
    t.is(res.body.code, 'unauthenticated', name);
  }
  // The same voter with a fresh token (iat now) is fine.
  t.is((await vote(alb.url, pollId, { token: await alb.env.voter(sub), altcha, headers: net })).status, 202);
});

test('a revoked jti is refused on the vote path; revoking needs the admin scope; the list is bounded', async (t) => {
  const { alb } = t.context;
  const admin = await alb.env.admin();
  const { pollId } = await createPoll(alb.url, admin);
  const jti = `stolen-${randomUUID()}`;
  const sub = `voter-${randomUUID()}`;
  const stolen = await mintToken({ privateKeyPem: alb.env.privateKeyPem, sub, jti });
  const revoke = (token: string, id: string) =>
    fetch(`${alb.url}/v1/token-revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: id }),
    });
  const byVoter = await revoke(stolen, jti);
  t.is(byVoter.status, 403);
  t.is((await byVoter.json()).code, 'forbidden');
  const revoked = await revoke(admin, jti);
  t.is(revoked.status, 201);
  t.is((await revoked.json()).jti, jti);
  const net = { 'x-forwarded-for': freshNetwork() };
  const res = await vote(alb.url, pollId, {
    token: stolen,
    altcha: await challengeVia(alb, await alb.env.voter(sub), pollId, net),
    headers: net,
  });
  t.is(res.status, 401);
  t.is(res.body.code, 'unauthenticated');
  t.is(res.body.detail, 'this token was revoked');
  // TOKEN_REVOCATIONS_MAX=48 over 16 shards: 3 per shard (this test is the only one revoking on this instance).
  // Two more jtis in the stolen one's shard fit, the next is 409.
  const sameShard = () => {
    for (;;) {
      const id = `x-${randomUUID()}`;
      if (revocationShardOf(id) === revocationShardOf(jti)) return id;
    }
  };
  t.is((await revoke(admin, sameShard())).status, 201);
  t.is((await revoke(admin, sameShard())).status, 201);
  const full = await revoke(admin, sameShard());
  t.is(full.status, 409);
  t.is((await full.json()).code, 'revocation_list_full');
  // Revoking the same jti again extends it, it does not take a new slot.
  t.is((await revoke(admin, jti)).status, 201);
});

// ---- 8. unsafe subs ----------------------------------------------------------------------------------------

test('a token whose sub has unsafe characters (}{, newline, slash, space) is 401; provider-style subs pass', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  for (const sub of ['a}{b\nc', 'a/b', 'a b', '"quoted"', 'x'.repeat(129)]) {
    const token = await mintToken({ privateKeyPem: alb.env.privateKeyPem, sub });
    const res = await vote(alb.url, pollId, { token, altcha: 'bm90LWpzb24=' });
    t.is(res.status, 401, JSON.stringify(sub));
    t.is(res.body.code, 'unauthenticated', JSON.stringify(sub));
  }
  const net = { 'x-forwarded-for': freshNetwork() };
  for (const sub of ['google-oauth2|1234567890', 'us-east-1:9f1c2e3d-aaaa-bbbb-cccc-1234567890ab']) {
    const res = await vote(alb.url, pollId, {
      ...(await ballot(alb.url, pollId, await alb.env.voter(sub))),
      headers: net,
    });
    t.is(res.status, 202, sub);
  }
});

// ---- SDK identification and attestation (issue 11) ---------------------------------------------------------

test('X-Votestream-Attestation is passed through into evidence.attestation; oversized or odd ones are 400', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  const attestation = `eyJhbGciOiJFUzI1NiJ9.${randomBytes(600).toString('base64url')}.sig_-`;
  const accepted = await voteVia(alb, pollId, freshNetwork(), {
    headers: { 'x-votestream-attestation': attestation, 'x-votestream-client': 'votestream-sdk/0.1.0' },
  });
  t.is(accepted.status, 202);
  const tooLong = await voteVia(alb, pollId, freshNetwork(), {
    headers: { 'x-votestream-attestation': 'A'.repeat(8193) },
  });
  t.is(tooLong.status, 400);
  t.is(tooLong.body.code, 'invalid_body');
  const odd = await voteVia(alb, pollId, freshNetwork(), { headers: { 'x-votestream-attestation': 'a"b' } });
  t.is(odd.status, 400);
  t.is(odd.body.code, 'invalid_body');
  const serde = await createAvroSerde({ registryUrl: alb.env.config.schemaRegistryUrl, records: ['VoteCast'] });
  const records = await readTopic<VoteCast>(`${alb.env.prefix}votes`, serde.decoder('VoteCast'));
  t.is(records.find((v) => v.voteId === accepted.body.voteId)?.evidence.attestation, attestation);
});

// ---- 6. headers and surfaces -------------------------------------------------------------------------------

test('every response says nosniff; /metrics is not on the API port but on INGEST_METRICS_PORT', async (t) => {
  const { alb } = t.context;
  const { pollId } = await createPoll(alb.url, await alb.env.admin());
  const accepted = await voteVia(alb, pollId, freshNetwork());
  t.is(accepted.status, 202);
  t.is(accepted.headers.get('x-content-type-options'), 'nosniff');
  for (const path of ['/healthz', '/openapi.json', '/v1/polls/p-none', '/nope', '/metrics']) {
    const res = await fetch(`${alb.url}${path}`);
    t.is(res.headers.get('x-content-type-options'), 'nosniff', path);
    t.is(res.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'", path);
  }
  const onApi = await fetch(`${alb.url}/metrics`);
  t.is(onApi.status, 404);
  t.is((await onApi.json()).code, 'not_found');
  const scraped = await fetch(`${alb.ingest.metricsUrl}/metrics`);
  t.is(scraped.status, 200);
  t.regex(await scraped.text(), /ingest_votes_total\{[^}]*outcome="accepted"[^}]*\} \d+/);
});

// ---- 7. poll cap before the write; per-admin creation limit ------------------------------------------------

test('poll creation: per-admin rate limit (429), and the cap is checked before the write (409, nothing in Kafka)', async (t) => {
  const cleanup = t.context.cleanup;
  const i = await start(cleanup, { POLLS_MAX: '3', RATE_POLL_CREATE_POINTS: '2', RATE_POLL_CREATE_DURATION_S: '60' });
  const admin = (n: number) => mintToken({ privateKeyPem: i.env.privateKeyPem, sub: `admin-${n}`, admin: true });
  const create = async (token: string) => {
    const res = await fetch(`${i.url}/v1/polls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'Cap',
        options: [
          { id: 'a', label: 'A' },
          { id: 'b', label: 'B' },
        ],
      }),
    });
    return { status: res.status, body: await res.json() };
  };
  const first = await admin(1);
  const statuses = [(await create(first)).status, (await create(first)).status];
  const third = await create(first);
  t.deepEqual(statuses, [201, 201]);
  t.is(third.status, 429);
  t.is(third.body.code, 'rate_limited');
  const second = await admin(2);
  t.is((await create(second)).status, 201);
  const over = await create(second);
  t.is(over.status, 409);
  t.is(over.body.code, 'poll_limit_reached');
  // Exactly the three created polls are in the polls topic: the refused one was never written.
  const serde = await createAvroSerde({ registryUrl: i.env.config.schemaRegistryUrl, records: ['PollEvent'] });
  const events = await readTopic<PollEvent>(`${i.env.prefix}polls`, serde.decoder('PollEvent'));
  // Give a wrongly written fourth record time to arrive: read the end offset, which is exact.
  const admin2 = createKafka({ clientId: 'sec-test', brokers: ['127.0.0.1:9092'], logger: silent }).admin();
  await admin2.connect();
  const offsets = await admin2.fetchTopicOffsets(`${i.env.prefix}polls`);
  await admin2.disconnect();
  t.is(
    offsets.reduce((n, o) => n + Number(o.high), 0),
    3,
  );
  t.is(events.filter((e) => e.type === 'CREATED').length, 3);
  t.is(i.ingest.catalog.size, 3);
});

// ---- 5. slow clients ---------------------------------------------------------------------------------------

/** Opens a connection and trickles `bytes`, one every `everyMs`, until the server closes it; resolves the ms it lived and what it got. */
function trickle(port: number, bytes: string, everyMs: number, giveUpMs: number) {
  return new Promise<{ closedAfterMs: number | null; received: string }>((resolve) => {
    const started = Date.now();
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let received = '';
    let i = 0;
    const timer = setInterval(() => {
      if (i < bytes.length) socket.write(bytes[i++] as string);
    }, everyMs);
    const giveUp = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      resolve({ closedAfterMs: null, received });
    }, giveUpMs);
    socket.on('data', (d) => {
      received += d.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - started, received });
    });
  });
}

test('a slowloris client (headers or body a byte at a time) is cut with 408; connections beyond the cap are closed', async (t) => {
  const i = await start(t.context.cleanup, {
    HTTP_KEEP_ALIVE_TIMEOUT_MS: '500',
    HTTP_HEADERS_TIMEOUT_MS: '1500',
    HTTP_REQUEST_TIMEOUT_MS: '2500',
    HTTP_CONNECTIONS_MAX: '4',
  });
  const port = i.ingest.port;
  const slowHeaders = `GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-Slow: y\r\n'.repeat(400)}\r\n`;
  const headers = await trickle(port, slowHeaders, 50, 30_000);
  t.not(headers.closedAfterMs, null, 'the slow-headers connection was never closed');
  t.true((headers.closedAfterMs as number) < 15_000);
  t.regex(headers.received, /^HTTP\/1\.1 408 /);
  const slowBody = `POST /v1/polls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n${'{'.repeat(4000)}`;
  const body = await trickle(port, slowBody, 50, 30_000);
  t.not(body.closedAfterMs, null, 'the slow-body connection was never closed');
  t.true((body.closedAfterMs as number) < 15_000);
  t.regex(body.received, /^HTTP\/1\.1 408 /);

  // HTTP_CONNECTIONS_MAX=4: four idle connections are held, the fifth is closed at once without an answer.
  const held: Socket[] = [];
  t.teardown(() => {
    for (const s of held) s.destroy();
  });
  for (let n = 0; n < 4; n++) {
    const s = connect({ host: '127.0.0.1', port });
    await new Promise((r) => s.once('connect', r));
    held.push(s);
  }
  // The server counts a connection when it accepts it: wait until it holds all four.
  const connections = () => new Promise<number>((r) => i.ingest.server.getConnections((_e, c) => r(c)));
  // On a timeout the assertions below say what is wrong.
  await eventually('4 connections held', async () => ((await connections()) >= 4 ? true : undefined), 10_000, 50).catch(
    () => undefined,
  );
  const fifth = await trickle(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 10, 10_000);
  t.not(fifth.closedAfterMs, null);
  t.is(fifth.received, '');
});
