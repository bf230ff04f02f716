// The end-to-end proof (issue 7): the three services as separate processes on the real stack, a few thousand
// voters through the voter SDK, plus second votes, concurrent retries, a lost vote guard (Redis failover),
// forged tokens and unsolved or wrong proofs of work. The final totals from the results API, the CQL table and
// the MQTT topic equal the expected counts exactly; every accepted voter's receipt says counted (and a second
// vote that got past ingest says rejected as duplicate); nothing that was refused with a 4xx was counted.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  devPrivateKeyPem,
  eventually,
  finalResults,
  freePort,
  isolatedEnv,
  migrateKeyspace,
  type RunningVotestream,
  repoRoot,
  runAudit,
  runRecount,
  stack,
  stackDir,
  startVotestream,
  uniqueId,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import { createReadModels } from '@votestream/read-models';
import { createCqlClient } from '@votestream/runtime';
import {
  type AltchaChallenge,
  createVoterClient,
  encodeAltchaPayload,
  solveAltcha,
  type VoteOutcome,
} from '@votestream/sdk';
import type { RecountReport } from '@votestream/stream';
import test from 'ava';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';

const VOTERS = Number(process.env.E2E_VOTERS ?? 2000);
const CONCURRENCY = 24;
const options = ['north', 'south', 'east'];

interface Expect {
  counted: Map<string, { voteId: string; optionId: string }>;
  duplicates: Map<string, { voteId: string; optionId: string }>;
  refusedVoters: Set<string>;
}

test('votes cast through the SDK are counted exactly once in the results API, the CQL table and on MQTT', async (t) => {
  t.timeout(15 * 60_000);
  const id = uniqueId('e2e');
  const prefix = `${id}.`;
  const keyspace = `ks_${id}`;
  const redisPrefix = `${id}:`;
  const pollId = `poll-${id}`;
  const privateKeyPem = devPrivateKeyPem();

  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  const redis = new Redis(stack.redisUrl);
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
    redis.disconnect();
  });
  await migrateKeyspace(keyspace);

  const system: RunningVotestream = await startVotestream({
    prefix,
    ports: { ingest: await freePort(), projections: await freePort(), streamMetrics: await freePort() },
    logDir: join(repoRoot, 'test-results/e2e-logs'),
    env: {
      ...isolatedEnv(id),
      ALTCHA_MAX_NUMBER: '1000',
      RATE_NETWORK_POINTS: '100000',
      STREAM_GRACE_MS: '1000',
    },
  });
  t.teardown(() => system.stop());
  const api = system.apiUrl;
  const admin = await mintToken({ privateKeyPem, sub: 'e2e-admin', admin: true });
  const created = await fetch(`${api}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pollId, title: 'End to end', options: options.map((o) => ({ id: o, label: o })) }),
  });
  t.is(created.status, 201, await created.clone().text());

  const expect: Expect = { counted: new Map(), duplicates: new Map(), refusedVoters: new Set() };
  const tokenOf = (voterId: string) => mintToken({ privateKeyPem, sub: voterId });
  const cast = async (voterId: string, optionId: string): Promise<VoteOutcome> => {
    const token = await tokenOf(voterId);
    const client = createVoterClient({ apiUrl: api, getToken: () => token });
    try {
      return await client.castVote(pollId, optionId);
    } finally {
      await client.close();
    }
  };

  // 1. Distinct voters, each through the SDK. Every tenth tries again from a second device: ingest refuses it.
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  let next = 0;
  await Promise.all(
    [...Array(CONCURRENCY)].map(async () => {
      for (let i = next++; i < VOTERS; i = next++) {
        const voterId = `${id}-voter-${i}`;
        const optionId = options[i % 3]!;
        const first = await cast(voterId, optionId);
        count(`first:${first.kind}`);
        if (first.kind === 'accepted') expect.counted.set(voterId, { voteId: first.voteId, optionId });
        if (i % 10 === 0) {
          const again = await cast(voterId, options[(i + 1) % 3]!);
          count(`second:${again.kind}`);
          if (again.kind === 'already_voted' && first.kind === 'accepted') t.is(again.voteId, first.voteId);
        }
      }
    }),
  );
  t.is(outcomes.get('first:accepted'), VOTERS, JSON.stringify([...outcomes]));
  t.is(outcomes.get('second:already_voted'), Math.ceil(VOTERS / 10), JSON.stringify([...outcomes]));

  // 2. Concurrent retries: one voter's request (same Idempotency-Key, same body, same proof of work) sent 8
  //    times at once. One vote; every answer names it.
  const retryVoter = `${id}-retrier`;
  const retryToken = await tokenOf(retryVoter);
  const challengeFor = async (token: string) =>
    (await (
      await fetch(`${api}/v1/challenge?pollId=${pollId}`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as AltchaChallenge;
  const challenge = await challengeFor(retryToken);
  const altcha = encodeAltchaPayload(challenge, await solveAltcha(challenge));
  const key = randomUUID();
  const send = async () => {
    const res = await fetch(`${api}/v1/polls/${pollId}/votes`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${retryToken}`,
        'content-type': 'application/json',
        'idempotency-key': key,
        'x-altcha': altcha,
      },
      body: JSON.stringify({ optionId: 'east' }),
    });
    return { status: res.status, body: (await res.json()) as { voteId?: string; code?: string } };
  };
  const answers = await Promise.all([...Array(8)].map(send));
  // Each concurrent copy gets the vote (202), or is told the original is still in flight (503, retry later).
  for (const a of answers) {
    t.true(a.status === 202 || (a.status === 503 && a.body.code === 'unavailable'), JSON.stringify(a));
  }
  // A retry after the dust settles replays the original answer: the same vote.
  const replay = await send();
  t.is(replay.status, 202, JSON.stringify(replay));
  const retryVoteId = replay.body.voteId!;
  for (const a of answers) if (a.status === 202) t.is(a.body.voteId, retryVoteId);
  expect.counted.set(retryVoter, { voteId: retryVoteId, optionId: 'east' });

  // 3. Redis loses the vote guards of 50 voters (a failover to a replica that had not seen them): ingest lets
  //    their second vote through, and the stream's dedupe, the authoritative guard, rejects it as a duplicate.
  const lost = [...expect.counted.keys()].filter((v) => v.includes('-voter-')).slice(0, 50);
  for (const voterId of lost) await redis.del(`${redisPrefix}voted:{${pollId}/${voterId}}`);
  for (const voterId of lost) {
    const first = expect.counted.get(voterId)!;
    const otherOption = options[(options.indexOf(first.optionId) + 1) % 3]!;
    const again = await cast(voterId, otherOption);
    t.is(again.kind, 'accepted', JSON.stringify(again));
    if (again.kind === 'accepted') expect.duplicates.set(voterId, { voteId: again.voteId, optionId: otherOption });
  }

  // 4. Bad actors: forged tokens, no proof of work, a wrong proof of work. All refused with a 4xx, none counted.
  const { privateKey } = generateKeyPairSync('ed25519');
  const forgedPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const badVote = async (voterId: string, token: string, altchaHeader: string | undefined) => {
    const res = await fetch(`${api}/v1/polls/${pollId}/votes`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': randomUUID(),
        ...(altchaHeader === undefined ? {} : { 'x-altcha': altchaHeader }),
      },
      body: JSON.stringify({ optionId: 'north' }),
    });
    expect.refusedVoters.add(voterId);
    return `${res.status} ${((await res.json()) as { code: string }).code}`;
  };
  const refusals = new Map<string, number>();
  const refused = (k: string) => refusals.set(k, (refusals.get(k) ?? 0) + 1);
  for (let i = 0; i < 30; i++) {
    const voterId = `${id}-forger-${i}`;
    refused(await badVote(voterId, await mintToken({ privateKeyPem: forgedPem, sub: voterId }), undefined));
  }
  for (let i = 0; i < 30; i++) {
    const voterId = `${id}-lazy-${i}`;
    refused(await badVote(voterId, await tokenOf(voterId), undefined));
  }
  for (let i = 0; i < 20; i++) {
    const voterId = `${id}-cheat-${i}`;
    const token = await tokenOf(voterId);
    const c = await challengeFor(token);
    const wrong = encodeAltchaPayload(c, { counter: 1, derivedKey: '00'.repeat(32), time: 1 } as never);
    refused(await badVote(voterId, token, wrong));
  }
  t.deepEqual(Object.fromEntries(refusals), {
    '401 unauthenticated': 30,
    '403 challenge_required': 30,
    '403 challenge_failed': 20,
  });

  // The expected tally: one counted vote per accepted voter, by option, computed here independently.
  const expectedTotals: Record<string, number> = Object.fromEntries(options.map((o) => [o, 0]));
  for (const { optionId } of expect.counted.values()) expectedTotals[optionId]! += 1;
  const expectedTotal = expect.counted.size;
  t.is(expectedTotal, VOTERS + 1);

  // Close the poll; the final tally follows after the grace period.
  const closed = await fetch(`${api}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
  });
  t.is(closed.status, 200);

  const results = await finalResults(api, pollId, 180_000);
  t.deepEqual(results.totals, expectedTotals);
  t.is(results.total, expectedTotal);

  const row = (
    await cql.execute(`SELECT totals, total, final, version FROM ${keyspace}.poll_totals WHERE poll_id = ?`, [pollId], {
      prepare: true,
    })
  ).first();
  t.deepEqual(
    Object.fromEntries(Object.entries(row.get('totals') as Record<string, unknown>).map(([k, v]) => [k, Number(v)])),
    expectedTotals,
  );
  t.is(Number(row.get('total')), expectedTotal);
  t.true(row.get('final') as boolean);

  // A TV graphics system that connects now gets the retained totals at once, and the final totals. Projections
  // writes Redis and CQL before it publishes (MQTT is coalesced to 10/s), so the results API can say final a
  // moment before the retained message does: the final message is awaited, with its own deadline.
  type Totals = { totals: Record<string, number>; total: number; final: boolean; version: number };
  const live = await mqtt.connectAsync(stack.mqttUrl, { clientId: uniqueId('tv-'), reconnectPeriod: 0 });
  t.teardown(() => live.endAsync());
  const seen: Totals[] = [];
  live.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString()) as Totals));
  await live.subscribeAsync(`votestream/polls/${pollId}/totals`, { qos: 1 });
  await eventually('a retained totals message', async () => (seen.length > 0 ? true : undefined), 10_000);
  const onScreen = await eventually('the final totals on MQTT', async () => seen.find((m) => m.final), 30_000);
  // Versions on screen never go backwards.
  for (let i = 1; i < seen.length; i++) t.true(seen[i]!.version >= seen[i - 1]!.version);
  t.deepEqual(onScreen.totals, expectedTotals);
  t.is(onScreen.total, expectedTotal);
  t.true(onScreen.final);
  t.is(onScreen.version, results.version);

  // Receipts: every accepted voter's vote is counted; the duplicates that got past ingest are rejected.
  const readModels = createReadModels({ redis, cql, keyspace, redisPrefix });
  const receiptStatus = async (voterId: string) => {
    const res = await fetch(`${api}/v1/polls/${pollId}/votes/me`, {
      headers: { authorization: `Bearer ${await tokenOf(voterId)}` },
    });
    return {
      status: res.status,
      body: (await res.json()) as { voteId?: string; optionId?: string; status?: string; code?: string },
    };
  };
  const sample = [...expect.counted.keys()].filter((_, i) => i % 20 === 0).concat(lost.slice(0, 10), [retryVoter]);
  for (const voterId of sample) {
    const want = expect.counted.get(voterId)!;
    const got = await receiptStatus(voterId);
    t.deepEqual(
      got,
      { status: 200, body: { voteId: want.voteId, optionId: want.optionId, status: 'counted', reason: null } },
      voterId,
    );
  }
  for (const voterId of lost) {
    const receipts = await readModels.getReceipts(pollId, voterId);
    const byVote = new Map(receipts.map((r) => [r.voteId, r]));
    t.is(receipts.length, 2, voterId);
    t.is(byVote.get(expect.counted.get(voterId)!.voteId)?.status, 'counted');
    const dup = byVote.get(expect.duplicates.get(voterId)!.voteId);
    t.is(dup?.status, 'rejected');
    t.is(dup?.reason, 'duplicate');
    t.is(dup?.countedVoteId, expect.counted.get(voterId)!.voteId);
  }
  // Every counted voter has exactly one counted receipt (all of them, read from the ledger).
  let countedReceipts = 0;
  for (const voterId of expect.counted.keys()) {
    const receipts = await readModels.getReceipts(pollId, voterId);
    countedReceipts += receipts.filter((r) => r.status === 'counted').length;
  }
  t.is(countedReceipts, expectedTotal);
  // Nobody refused with a 4xx has a vote.
  for (const voterId of expect.refusedVoters) {
    t.deepEqual(await readModels.getReceipts(pollId, voterId), [], voterId);
    if (!voterId.includes('-forger-')) t.is((await receiptStatus(voterId)).status, 404);
  }

  // The recount replays the votes log by the dedupe rules and agrees with the decisions, CQL, the results API
  // and the retained MQTT message, all final.
  const recounted = await runRecount(system.env, pollId, ['--results-url', api, '--mqtt-url', stack.mqttUrl]);
  const report = recounted.report as RecountReport;
  t.is(recounted.code, 0, recounted.stderr);
  t.deepEqual(
    report.sources.map((s) => [s.source, s.totals, s.final]),
    [
      ['recount', expectedTotals, null],
      ['decisions', expectedTotals, null],
      ['cql', expectedTotals, true],
      ['results-api', expectedTotals, true],
      ['mqtt', expectedTotals, true],
    ],
  );
  t.is(report.recount.verdicts.differs, 0);
  t.true(report.agrees);

  // The final results carry the signed audit checkpoint; anyone verifies the decisions' chains against it, and a
  // voter finds their vote in them.
  const published = (await (await fetch(`${api}/v1/polls/${pollId}/results`)).json()) as {
    audit?: { heads: Array<{ count: number }>; signature: string | null };
  };
  t.is(
    published.audit?.heads.reduce((n, h) => n + h.count, 0),
    report.recount.votes,
  );
  t.is(typeof published.audit?.signature, 'string');
  const someone = [...expect.counted.values()][0]!;
  const verified = await runAudit(system.env, [
    'verify',
    '--poll',
    pollId,
    '--results-url',
    api,
    '--public-key',
    join(stackDir, 'secrets/audit-signing-public.pem'),
    '--vote',
    someone.voteId,
  ]);
  t.is(verified.code, 0, verified.out);
  t.regex(
    verified.out,
    new RegExp(`vote ${someone.voteId}: partition \\d+ position \\d+, COUNTED for ${someone.optionId}`),
  );
});
