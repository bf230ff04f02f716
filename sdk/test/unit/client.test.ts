/**
 * The client's retry, outbox and challenge logic against a scripted fake fetch (pure logic: the claims that the
 * SDK works against the real ingest are in ingest-system.test.ts).
 */
import { readFileSync } from 'node:fs';
import { createChallenge, verifySolution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import test from 'ava';
import { createVoterClient } from '../../src/client.ts';
import type { VoteProgress } from '../../src/delivery.ts';
import { subjectOfToken } from '../../src/encoding.ts';
import { createMemoryStorage } from '../../src/outbox.ts';
import { sdkVersion } from '../../src/version.ts';

const secret = 'fake-ingest-secret';
const tokenFor = (sub: string) => `x.${Buffer.from(JSON.stringify({ sub })).toString('base64url')}.y`;

type Scripted = { status: number; body?: unknown; headers?: Record<string, string> } | 'network-error';

interface VoteCall {
  idempotencyKey: string | null;
  altcha: string | null;
  authorization: string | null;
  client: string | null;
  attestation: string | null;
  body: string;
}

interface ChallengeCall {
  url: string;
  authorization: string | null;
  client: string | null;
}

/** A scripted stand-in for ingest's HTTP contract: real altcha challenges, vote answers taken from `script`. */
function fakeIngest(script: Scripted[] = []) {
  const votes: VoteCall[] = [];
  const challengeCalls: ChallengeCall[] = [];
  let challenges = 0;
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    if (url.includes('/v1/challenge?')) {
      challenges++;
      challengeCalls.push({
        url,
        authorization: headers.get('authorization'),
        client: headers.get('x-votestream-client'),
      });
      const c = await createChallenge({
        algorithm: 'SHA-256',
        cost: 1,
        counter: 40 + challenges,
        deriveKey,
        hmacSignatureSecret: secret,
        expiresAt: Math.floor(Date.now() / 1000) + 60,
      });
      return Response.json(c);
    }
    if (url.includes('/votes') && init?.method === 'POST') {
      votes.push({
        idempotencyKey: headers.get('idempotency-key'),
        altcha: headers.get('x-altcha'),
        authorization: headers.get('authorization'),
        client: headers.get('x-votestream-client'),
        attestation: headers.get('x-votestream-attestation'),
        body: String(init.body),
      });
      const next = script.shift();
      if (next === 'network-error') throw new TypeError('fetch failed');
      if (next) {
        return new Response(next.body === undefined ? null : JSON.stringify(next.body), {
          status: next.status,
          headers: next.headers,
        });
      }
      const { optionId } = JSON.parse(String(init.body));
      return Response.json(
        { voteId: `vote-${votes.length}`, pollId: 'p1', optionId, status: 'accepted' },
        { status: 202 },
      );
    }
    return Response.json({ code: 'not_found' }, { status: 404 });
  };
  return { fetch, votes, challengeCalls, challengeCount: () => challenges };
}

const problem = (status: number, code: string, headers: Record<string, string> = {}, extra: object = {}): Scripted => ({
  status,
  body: { code, detail: code, status, ...extra },
  headers: { 'content-type': 'application/problem+json', ...headers },
});

const fast = { retryDelayMsBase: 1, retryDelayMsMax: 5, attemptsMax: 4, retryBudgetMs: 10_000 };

async function verifies(altcha: string | null): Promise<boolean> {
  const { challenge, solution } = JSON.parse(atob(altcha ?? ''));
  return (
    await verifySolution({
      challenge,
      solution,
      deriveKey,
      hmacSignatureSecret: secret,
      hmacKeySignatureSecret: undefined,
    })
  ).verified;
}

test('a vote is sent with a valid X-Altcha, a bearer token and an Idempotency-Key, and accepted', async (t) => {
  const ingest = fakeIngest();
  const progress: VoteProgress['phase'][] = [];
  const client = createVoterClient({
    apiUrl: 'https://vote.example/',
    getToken: () => tokenFor('voter-1'),
    fetch: ingest.fetch,
    onProgress: (p) => progress.push(p.phase),
  });
  const outcome = await client.castVote('p1', 'a');
  t.like(outcome, { kind: 'accepted', voteId: 'vote-1', optionId: 'a', replayed: false });
  t.is(ingest.votes.length, 1);
  const [call] = ingest.votes;
  t.is(call?.authorization, `Bearer ${tokenFor('voter-1')}`);
  t.is(call?.body, '{"optionId":"a"}');
  t.regex(call?.idempotencyKey ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.true(await verifies(call?.altcha ?? null));
  // 'solving' appears only if the solve outlasted one slice, which depends on the machine.
  t.deepEqual(
    progress.filter((p, i) => progress[i - 1] !== p && p !== 'solving'),
    ['challenge', 'sending'],
  );
  t.deepEqual(await client.pendingVotes(), []);
});

test('the SDK names itself on every request, asks for a challenge with the token for this poll, and passes the attestation', async (t) => {
  const ingest = fakeIngest();
  const asked: unknown[] = [];
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('voter-1'),
    fetch: ingest.fetch,
    getAttestation: (request) => {
      asked.push(request);
      return 'eyJhbGciOiJFUzI1NiJ9.payload.sig';
    },
  });
  t.like(await client.castVote('poll-7', 'a'), { kind: 'accepted' });
  t.deepEqual(ingest.challengeCalls, [
    {
      url: 'https://vote.example/v1/challenge?pollId=poll-7',
      authorization: `Bearer ${tokenFor('voter-1')}`,
      client: `votestream-sdk/${sdkVersion}`,
    },
  ]);
  t.is(ingest.votes[0]?.client, `votestream-sdk/${sdkVersion}`);
  t.is(ingest.votes[0]?.attestation, 'eyJhbGciOiJFUzI1NiJ9.payload.sig');
  t.deepEqual(asked, [{ pollId: 'poll-7', optionId: 'a' }]);
  // An attestation service that fails: the vote goes without the header.
  const failing = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('voter-2'),
    fetch: ingest.fetch,
    getAttestation: () => Promise.reject(new Error('integrity API down')),
  });
  t.like(await failing.castVote('poll-8', 'b'), { kind: 'accepted' });
  t.is(ingest.votes[1]?.attestation, null);
});

test('sdkVersion is the package version', (t) => {
  t.is(sdkVersion, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
});

test('503 and 429 are retried with the same Idempotency-Key, waiting at least the Retry-After', async (t) => {
  const ingest = fakeIngest([
    problem(503, 'unavailable', { 'retry-after': '1' }),
    problem(429, 'rate_limited', { 'retry-after': '1' }),
    'network-error',
  ]);
  const waits: number[] = [];
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('voter-1'),
    fetch: ingest.fetch,
    retry: { ...fast, retryDelayMsMax: 5000 },
    random: () => 0,
    onProgress: (p) => {
      if (p.phase === 'waiting') waits.push(p.delayMs);
    },
  });
  const outcome = await client.castVote('p1', 'a');
  t.like(outcome, { kind: 'accepted', voteId: 'vote-4', replayed: true });
  t.is(ingest.votes.length, 4);
  t.is(new Set(ingest.votes.map((v) => v.idempotencyKey)).size, 1);
  t.is(new Set(ingest.votes.map((v) => v.altcha)).size, 1, 'the proof of work is solved once, not per retry');
  t.deepEqual(waits, [1000, 1000, 0]);
});

test('when attempts run out the vote stays queued, and a new client over the same storage resends it with the same key', async (t) => {
  const storage = createMemoryStorage();
  const down = fakeIngest(['network-error', 'network-error', problem(503, 'unavailable'), 'network-error']);
  const first = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('voter-1'),
    fetch: down.fetch,
    storage,
    retry: fast,
  });
  const outcome = await first.castVote('p1', 'b');
  t.like(outcome, { kind: 'network_error', queued: true });
  t.is(down.votes.length, 4);
  const [queued] = await first.pendingVotes();
  t.like(queued, { pollId: 'p1', optionId: 'b', voter: 'voter-1', sent: true });

  // The app restarts: a new client, same storage.
  const up = fakeIngest();
  const second = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('voter-1'),
    fetch: up.fetch,
    storage,
    retry: fast,
  });
  const flushed = await second.flushOutbox();
  t.is(flushed.length, 1);
  t.like(flushed[0]?.outcome, { kind: 'accepted', optionId: 'b', replayed: true });
  t.is(up.votes[0]?.idempotencyKey, queued?.idempotencyKey);
  t.is(up.votes[0]?.altcha, queued?.altcha, 'the solved challenge was kept, not solved again');
  t.is(up.challengeCount(), 0);
  t.deepEqual(await second.pendingVotes(), []);
});

test('a refused proof of work (spent or expired) is solved afresh and resent with the same key, a bounded number of times', async (t) => {
  const ingest = fakeIngest([problem(403, 'challenge_failed')]);
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: ingest.fetch,
    retry: fast,
  });
  t.like(await client.castVote('p1', 'a'), { kind: 'accepted' });
  t.is(ingest.challengeCount(), 2);
  t.is(ingest.votes[0]?.idempotencyKey, ingest.votes[1]?.idempotencyKey);
  t.not(ingest.votes[0]?.altcha, ingest.votes[1]?.altcha);

  const hostile = fakeIngest([
    problem(403, 'challenge_failed'),
    problem(403, 'challenge_failed'),
    problem(403, 'challenge_failed'),
  ]);
  const c2 = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: hostile.fetch,
    retry: fast,
    rechallengesMax: 2,
  });
  t.like(await c2.castVote('p1', 'a'), { kind: 'challenge_failed', status: 403 });
  t.is(hostile.votes.length, 3);
  t.deepEqual(await c2.pendingVotes(), []);
});

test('final refusals leave the outbox; unauthenticated keeps the vote queued for after sign-in', async (t) => {
  const storage = createMemoryStorage();
  const ingest = fakeIngest([
    problem(409, 'poll_closed'),
    problem(409, 'already_voted', {}, { voteId: 'the-first' }),
    problem(401, 'unauthenticated'),
  ]);
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: ingest.fetch,
    storage,
    retry: fast,
  });
  t.like(await client.castVote('closed', 'a'), { kind: 'poll_closed', status: 409 });
  t.like(await client.castVote('dup', 'a'), { kind: 'already_voted', voteId: 'the-first' });
  t.like(await client.castVote('auth', 'a'), { kind: 'unauthenticated', queued: true });
  t.deepEqual(
    (await client.pendingVotes()).map((e) => e.pollId),
    ['auth'],
  );
  const flushed = await client.flushOutbox();
  t.like(flushed, [{ pollId: 'auth', outcome: { kind: 'accepted' } }]);
});

test('a second castVote for the same poll joins the first; another option for that poll is refused', async (t) => {
  const ingest = fakeIngest([problem(503, 'unavailable')]);
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: ingest.fetch,
    retry: fast,
  });
  const [a, b, c] = await Promise.all([
    client.castVote('p1', 'a'),
    client.castVote('p1', 'a'),
    client.castVote('p1', 'b'),
  ]);
  t.like(a, { kind: 'accepted' });
  t.is(b, a);
  t.deepEqual(c, { kind: 'pending_vote_exists', pollId: 'p1', pendingOptionId: 'a' });
  t.is(ingest.votes.filter((v) => v.idempotencyKey !== null).length, 2);
});

test("a vote queued by one voter is not sent with another voter's token", async (t) => {
  const storage = createMemoryStorage();
  const down = fakeIngest(['network-error', 'network-error', 'network-error', 'network-error']);
  const alice = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('alice'),
    fetch: down.fetch,
    storage,
    retry: fast,
  });
  t.like(await alice.castVote('p1', 'a'), { kind: 'network_error' });
  const up = fakeIngest();
  const bob = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('bob'),
    fetch: up.fetch,
    storage,
    retry: fast,
  });
  t.deepEqual(await bob.flushOutbox(), []);
  t.is(up.votes.length, 0);
  const aliceAgain = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('alice'),
    fetch: up.fetch,
    storage,
    retry: fast,
  });
  t.like(await aliceAgain.flushOutbox(), [{ outcome: { kind: 'accepted' } }]);
});

test('the retry budget bounds the total time: a long Retry-After ends the call with the vote queued', async (t) => {
  const ingest = fakeIngest([problem(503, 'unavailable', { 'retry-after': '30' })]);
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: ingest.fetch,
    retry: { ...fast, retryDelayMsMax: 60_000, retryBudgetMs: 5_000 },
  });
  t.like(await client.castVote('p1', 'a'), { kind: 'unavailable', queued: true, retryAfterMs: 30_000 });
  t.is(ingest.votes.length, 1);
  t.is((await client.pendingVotes()).length, 1);
});

test('getReceipt maps the receipt and says whether a vote is still queued on this device', async (t) => {
  const answers: Response[] = [
    Response.json({ code: 'no_vote', detail: 'none' }, { status: 404 }),
    Response.json({ code: 'unavailable' }, { status: 503, headers: { 'retry-after': '0' } }),
    Response.json({ voteId: 'v1', optionId: 'a', status: 'counted', reason: null }),
  ];
  const fetch = async () => answers.shift() ?? Response.json({}, { status: 500 });
  const client = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch,
    retry: fast,
    random: () => 0,
  });
  t.deepEqual(await client.getReceipt('p1'), { kind: 'no_vote', pollId: 'p1', queuedInOutbox: false });
  t.deepEqual(await client.getReceipt('p1'), {
    kind: 'receipt',
    pollId: 'p1',
    voteId: 'v1',
    optionId: 'a',
    status: 'counted',
    reason: null,
  });
});

test('subjectOfToken reads sub from a JWT without trusting it, and null from anything else', (t) => {
  t.is(subjectOfToken(tokenFor('voter-ü')), 'voter-ü');
  t.is(subjectOfToken('not-a-jwt'), null);
  t.is(subjectOfToken('a.!!!.c'), null);
});

test('a resend refused as poll_closed is confirmed as accepted when the receipt shows this option counted', async (t) => {
  const storage = createMemoryStorage();
  const down = fakeIngest(['network-error', 'network-error', 'network-error', 'network-error']);
  const first = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: down.fetch,
    storage,
    retry: fast,
  });
  t.like(await first.castVote('p1', 'a'), { kind: 'network_error', queued: true });

  const receipts = [
    Response.json({ voteId: 'v-lost-answer', optionId: 'a', status: 'counted', reason: null }),
    Response.json({ voteId: 'v-other', optionId: 'a', status: 'pending', reason: null }),
  ];
  const closed = fakeIngest([problem(409, 'poll_closed')]);
  const fetch = async (input: string | URL | Request, init?: RequestInit) =>
    String(input).endsWith('/votes/me') ? (receipts.shift() as Response) : closed.fetch(input, init);
  const second = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch,
    storage,
    retry: fast,
  });
  t.like(await second.flushOutbox(), [
    { outcome: { kind: 'accepted', voteId: 'v-lost-answer', replayed: true, confirmedBy: 'receipt' } },
  ]);

  // PENDING is no proof: the refusal stands.
  const down2 = fakeIngest(['network-error', 'network-error', 'network-error', 'network-error']);
  const third = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: down2.fetch,
    storage,
    retry: fast,
  });
  t.like(await third.castVote('p2', 'a'), { kind: 'network_error' });
  const closed2 = fakeIngest([problem(409, 'poll_closed')]);
  const fetch2 = async (input: string | URL | Request, init?: RequestInit) =>
    String(input).endsWith('/votes/me') ? (receipts.shift() as Response) : closed2.fetch(input, init);
  const fourth = createVoterClient({
    apiUrl: 'https://vote.example',
    getToken: () => tokenFor('v'),
    fetch: fetch2,
    storage,
    retry: fast,
  });
  t.like(await fourth.flushOutbox(), [{ outcome: { kind: 'poll_closed' } }]);
  t.deepEqual(await fourth.pendingVotes(), []);
});
