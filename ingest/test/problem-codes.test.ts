// Every problem code the API can return, each reached through a real request on the real stack, with its exact
// status, content type, code and (where the code sets one) Retry-After. The table must cover every code of
// ingest/src/http/problem.ts: a new code fails this test until a row reaches it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { closePoll, createPoll } from '@votestream/devstack';
import anyTest, { type TestFn } from 'ava';
import { revocationShardOf } from '../src/auth/revocations.ts';
import { type IngestHandle, startIngest } from '../src/index.ts';
import { ballot, forgedChallenge, silent, solvedChallenge, tcpProxy, testEnv, vote, votesInFlight } from './helpers.ts';

interface Answer {
  status: number;
  contentType: string | null;
  code: string | undefined;
  retryAfter: string | null;
}

interface Row {
  name: string;
  status: number;
  code: string;
  /** The exact Retry-After the answer must carry, or null when it carries none. */
  retryAfter: string | null;
  call: () => Promise<Answer>;
}

const test = anyTest as TestFn<{ cleanup: (() => Promise<unknown>)[] }>;
test.before((t) => {
  t.context.cleanup = [];
});
test.after.always(async (t) => {
  for (const fn of t.context.cleanup) await fn();
});

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    code,
    retryAfter: res.headers.get('retry-after'),
  };
}

const voteAnswer = async (...args: Parameters<typeof vote>): Promise<Answer> => {
  const r = await vote(...args);
  return {
    status: r.status,
    contentType: r.headers.get('content-type'),
    code: r.body?.code,
    retryAfter: r.headers.get('retry-after'),
  };
};

/** An ingest whose Kafka, Redis or both go through proxies the test controls. */
async function proxiedIngest(
  cleanup: (() => Promise<unknown>)[],
  overrides: Record<string, string>,
  via: { kafka?: boolean; redis?: boolean },
) {
  const kafka = tcpProxy();
  const kafkaPort = await kafka.listen();
  const redis = tcpProxy({ host: '127.0.0.1', port: 6379 });
  const redisPort = await redis.listen();
  cleanup.push(
    () => kafka.close(),
    () => redis.close(),
  );
  const env = await testEnv((fn) => cleanup.push(fn), {
    ...(via.redis ? { REDIS_URL: `redis://127.0.0.1:${redisPort}` } : {}),
    ...overrides,
  });
  const ingest: IngestHandle = await startIngest(
    via.kafka ? { ...env.config, kafkaBrokers: [`127.0.0.1:${kafkaPort}`] } : env.config,
    {
      logger: silent,
      ...(via.kafka
        ? { kafkaSocketFactory: ({ onConnect }) => connect({ host: '127.0.0.1', port: kafkaPort }, onConnect) }
        : {}),
    },
  );
  cleanup.unshift(() => ingest.close());
  return { env, ingest, url: ingest.url, kafka, redis };
}

const problemJson = 'application/problem+json; charset=utf-8';

test('every problem code: exact status, content type, code and Retry-After, through real requests', async (t) => {
  t.timeout(240_000);
  const cleanup = t.context.cleanup;

  // A: the ordinary client errors, on an ingest with nothing cut. CQL points at a closed port, so the read
  // side is unreachable (results of a poll without Redis results, and receipts, come from CQL).
  const a = await proxiedIngest(
    cleanup,
    { CQL_CONTACT_POINTS: '127.0.0.1:1', RATE_VOTER_POINTS: '1000', RATE_NETWORK_POINTS: '100000' },
    {},
  );
  const admin = await a.env.admin();
  const { pollId } = await createPoll(a.url, admin);
  const closedPoll = (await createPoll(a.url, admin)).pollId;
  await closePoll(a.url, admin, closedPoll); // and waits for the close to take effect (POLL_CLOSE_LEAD_MS)
  const futurePoll = (await createPoll(a.url, admin, { opensAt: new Date(Date.now() + 3_600_000).toISOString() }))
    .pollId;
  const votedToken = await a.env.voter();
  const votedKey = randomUUID();
  const first = await vote(a.url, pollId, {
    token: votedToken,
    idempotencyKey: votedKey,
    altcha: await solvedChallenge(a.url, votedToken, pollId),
  });
  t.is(first.status, 202);

  // B: Kafka behind a proxy; one vote in flight at most, so a second one finds the batcher full.
  const b = await proxiedIngest(
    cleanup,
    {
      PRODUCE_VOTES_IN_FLIGHT_MAX: '1',
      PRODUCE_BATCH_MESSAGES_MAX: '1',
      PRODUCE_TIMEOUT_MS: '1000',
      PRODUCE_BACKOFF_MS: '60000',
    },
    { kafka: true },
  );
  const bAdmin = await b.env.admin();
  const bPoll = (await createPoll(b.url, bAdmin)).pollId;
  // C: Redis behind a proxy. D: a per-network limit of 2 votes a minute.
  const c = await proxiedIngest(cleanup, {}, { redis: true });
  const cPoll = (await createPoll(c.url, await c.env.admin())).pollId;
  const d = await proxiedIngest(cleanup, { RATE_NETWORK_POINTS: '2', RATE_NETWORK_DURATION_S: '60' }, {});
  // E: tiny admin caps: one poll, one revoked jti per revocation shard (16 shards).
  const e = await proxiedIngest(cleanup, { POLLS_MAX: '1', TOKEN_REVOCATIONS_MAX: '16' }, {});
  const eAdmin = await e.env.admin();
  const dPoll = (await createPoll(d.url, await d.env.admin())).pollId;

  const get = (url: string, path: string, token?: string) =>
    fetch(`${url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {}).then(answer);
  const post = (url: string, path: string, token: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).then(answer);
  const poll = {
    title: 'x',
    options: [
      { id: 'a', label: 'A' },
      { id: 'b', label: 'B' },
    ],
  };

  const rows: Row[] = [
    {
      name: 'a path parameter that is not valid percent-encoding',
      status: 400,
      code: 'invalid_path',
      retryAfter: null,
      call: async () => get(a.url, '/v1/polls/%ff'),
    },
    {
      name: 'vote with a Content-Encoding ingest does not speak',
      status: 415,
      code: 'unsupported_encoding',
      retryAfter: null,
      call: async () => {
        const token = await a.env.voter();
        return fetch(`${a.url}/v1/polls/${pollId}/votes`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-encoding': 'compress',
            'idempotency-key': randomUUID(),
            'x-altcha': await solvedChallenge(a.url, token, pollId),
          },
          body: JSON.stringify({ optionId: 'a' }),
        }).then(answer);
      },
    },
    {
      name: 'poll create beyond POLLS_MAX',
      status: 409,
      code: 'poll_limit_reached',
      retryAfter: null,
      call: async () => {
        const first = await post(e.url, '/v1/polls', eAdmin, poll);
        t.is(first.status, 201);
        return post(e.url, '/v1/polls', eAdmin, poll);
      },
    },
    {
      name: 'token revocation beyond TOKEN_REVOCATIONS_MAX',
      status: 409,
      code: 'revocation_list_full',
      retryAfter: null,
      call: async () => {
        const jti = `j-${randomUUID()}`;
        t.is((await post(e.url, '/v1/token-revocations', eAdmin, { jti })).status, 201);
        let other = `j-${randomUUID()}`;
        while (revocationShardOf(other) !== revocationShardOf(jti)) other = `j-${randomUUID()}`;
        return post(e.url, '/v1/token-revocations', eAdmin, { jti: other });
      },
    },
    {
      name: 'vote, malformed JSON',
      status: 400,
      code: 'invalid_body',
      retryAfter: null,
      call: async () => voteAnswer(a.url, pollId, { token: await a.env.voter(), body: '{' }),
    },
    {
      name: 'vote, unknown option',
      status: 400,
      code: 'unknown_option',
      retryAfter: null,
      call: async () =>
        voteAnswer(a.url, pollId, {
          ...(await ballot(a.url, pollId, await a.env.voter())),
          optionId: 'zzz',
        }),
    },
    {
      name: 'vote, no token',
      status: 401,
      code: 'unauthenticated',
      retryAfter: null,
      call: async () =>
        voteAnswer(a.url, pollId, { token: '', altcha: await solvedChallenge(a.url, await a.env.voter(), pollId) }),
    },
    {
      name: 'votes/me, no token',
      status: 401,
      code: 'unauthenticated',
      retryAfter: null,
      call: () => get(a.url, `/v1/polls/${pollId}/votes/me`),
    },
    {
      name: 'create poll, voter token',
      status: 403,
      code: 'forbidden',
      retryAfter: null,
      call: async () => post(a.url, '/v1/polls', await a.env.voter(), poll),
    },
    {
      name: 'close poll, voter token',
      status: 403,
      code: 'forbidden',
      retryAfter: null,
      call: async () => post(a.url, `/v1/polls/${pollId}/close`, await a.env.voter()),
    },
    {
      name: 'vote, no challenge',
      status: 403,
      code: 'challenge_required',
      retryAfter: null,
      call: async () => voteAnswer(a.url, pollId, { token: await a.env.voter(), altcha: null }),
    },
    {
      name: 'vote, forged challenge',
      status: 403,
      code: 'challenge_failed',
      retryAfter: null,
      call: async () => voteAnswer(a.url, pollId, { token: await a.env.voter(), altcha: await forgedChallenge() }),
    },
    {
      name: 'poll, unknown',
      status: 404,
      code: 'poll_not_found',
      retryAfter: null,
      call: () => get(a.url, '/v1/polls/p-unknown'),
    },
    {
      name: 'results, unknown poll',
      status: 404,
      code: 'poll_not_found',
      retryAfter: null,
      call: () => get(a.url, '/v1/polls/p-unknown/results'),
    },
    {
      name: 'close, unknown poll',
      status: 404,
      code: 'poll_not_found',
      retryAfter: null,
      call: () => post(a.url, '/v1/polls/p-unknown/close', admin),
    },
    {
      name: 'route, unknown',
      status: 404,
      code: 'not_found',
      retryAfter: null,
      call: () => get(a.url, '/v2/anything'),
    },
    {
      name: 'create poll, id taken',
      status: 409,
      code: 'poll_exists',
      retryAfter: null,
      call: () => post(a.url, '/v1/polls', admin, { ...poll, pollId }),
    },
    {
      name: 'vote, second vote',
      status: 409,
      code: 'already_voted',
      retryAfter: null,
      call: async () =>
        voteAnswer(a.url, pollId, { token: votedToken, altcha: await solvedChallenge(a.url, votedToken, pollId) }),
    },
    {
      name: 'vote, poll not open yet',
      status: 409,
      code: 'poll_not_open',
      retryAfter: null,
      call: async () => voteAnswer(a.url, futurePoll, await ballot(a.url, futurePoll, await a.env.voter())),
    },
    {
      name: 'vote, poll closed',
      status: 409,
      code: 'poll_closed',
      retryAfter: null,
      call: async () => voteAnswer(a.url, closedPoll, await ballot(a.url, closedPoll, await a.env.voter())),
    },
    {
      name: 'vote, key reused with another body',
      status: 422,
      code: 'idempotency_key_reused',
      retryAfter: null,
      call: async () =>
        voteAnswer(a.url, pollId, {
          token: votedToken,
          idempotencyKey: votedKey,
          optionId: 'b',
          altcha: await solvedChallenge(a.url, votedToken, pollId),
        }),
    },
    // Read side unreachable (CQL on a closed port; no results in Redis for this poll yet).
    {
      name: 'results, read side unreachable',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: () => get(a.url, `/v1/polls/${pollId}/results`),
    },
    {
      name: 'votes/me, read side unreachable',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: async () => get(a.url, `/v1/polls/${pollId}/votes/me`, await a.env.voter()),
    },
    // Kafka held: a vote waits in flight; meanwhile the batcher is full, and a replay of its key is in flight.
    {
      name: 'vote, batcher full (PRODUCE_VOTES_IN_FLIGHT_MAX)',
      status: 503,
      code: 'unavailable',
      retryAfter: '1',
      call: async () => {
        b.kafka.hold();
        const token = await b.env.voter();
        const key = randomUUID();
        const altcha = await solvedChallenge(b.url, token, bPoll);
        const held = voteAnswer(b.url, bPoll, { token, idempotencyKey: key, altcha });
        await votesInFlight(b.ingest.metricsUrl, 1);
        const full = await voteAnswer(b.url, bPoll, {
          ...(await ballot(b.url, bPoll, await b.env.voter())),
        });
        const replay = await voteAnswer(b.url, bPoll, { token, idempotencyKey: key, altcha });
        t.like(replay, { status: 503, code: 'unavailable', retryAfter: '1' }, 'a replay of a key still in flight');
        b.kafka.release();
        t.like(await held, { status: 202 }, 'the held vote is acknowledged once Kafka answers');
        return full;
      },
    },
    {
      name: 'vote, Kafka does not acknowledge',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: async () => {
        b.kafka.cut();
        return voteAnswer(b.url, bPoll, await ballot(b.url, bPoll, await b.env.voter()));
      },
    },
    {
      name: 'vote, within the produce backoff after a failure',
      status: 503,
      code: 'unavailable',
      retryAfter: '60',
      call: async () => voteAnswer(b.url, bPoll, await ballot(b.url, bPoll, await b.env.voter())),
    },
    {
      name: 'create poll, Kafka unreachable',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: () => post(b.url, '/v1/polls', bAdmin, poll),
    },
    {
      name: 'close poll, Kafka unreachable',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: () => post(b.url, `/v1/polls/${bPoll}/close`, bAdmin),
    },
    {
      name: 'vote, Redis unreachable',
      status: 503,
      code: 'unavailable',
      retryAfter: '2',
      call: async () => {
        const token = await c.env.voter();
        const altcha = await solvedChallenge(c.url, token, cPoll);
        c.redis.cut();
        return voteAnswer(c.url, cPoll, { token, altcha });
      },
    },
    {
      name: 'votes/me, no vote in this poll',
      status: 404,
      code: 'no_vote',
      retryAfter: null,
      call: async () => get(d.url, `/v1/polls/${dPoll}/votes/me`, await d.env.voter()),
    },
    {
      name: 'vote, per-network limit spent',
      status: 429,
      code: 'rate_limited',
      retryAfter: null, // checked below: what is left of the 60 s window
      call: async () => {
        const startedBy = Date.now();
        for (let i = 0; i < 2; i++) {
          t.is((await vote(d.url, dPoll, await ballot(d.url, dPoll, await d.env.voter()))).status, 202);
        }
        const limited = await voteAnswer(d.url, dPoll, {
          ...(await ballot(d.url, dPoll, await d.env.voter())),
        });
        const leftS = Number(limited.retryAfter);
        const elapsedS = Math.ceil((Date.now() - startedBy) / 1000);
        t.true(leftS <= 60 && leftS >= 60 - elapsedS, `Retry-After ${limited.retryAfter} after ${elapsedS} s`);
        return { ...limited, retryAfter: null };
      },
    },
    {
      name: 'a handler that throws an unexpected error (a bug, injected in the poll catalog)',
      status: 500,
      code: 'internal',
      retryAfter: null,
      call: async () => {
        const original = a.ingest.catalog.get.bind(a.ingest.catalog);
        a.ingest.catalog.get = () => {
          throw new TypeError('injected bug');
        };
        try {
          const res = await fetch(`${a.url}/v1/polls/${pollId}`);
          const body = await res.clone().json();
          t.false(JSON.stringify(body).includes('injected bug'), 'the error message is not leaked');
          return answer(res);
        } finally {
          a.ingest.catalog.get = original;
        }
      },
    },
  ];

  for (const row of rows) {
    const got = await row.call();
    t.deepEqual(
      got,
      { status: row.status, contentType: problemJson, code: row.code, retryAfter: row.retryAfter },
      row.name,
    );
  }

  // Every code of the API is reached by some row: a code added to problem.ts fails here, by name, until a row
  // reaches it with a real request.
  const codes = [
    ...readFileSync(new URL('../src/http/problem.ts', import.meta.url), 'utf8').matchAll(/^ {2}([a-z_]+): \[\d{3},/gm),
  ].map((m) => m[1] as string);
  const covered = new Set(rows.map((r) => r.code));
  t.deepEqual(
    codes.filter((c) => !covered.has(c)).map((c) => `problem code ${c} (ingest/src/http/problem.ts) has no row here`),
    [],
  );
  t.deepEqual(
    [...covered].filter((c) => !codes.includes(c)).map((c) => `row code ${c} is not in ingest/src/http/problem.ts`),
    [],
  );
});
