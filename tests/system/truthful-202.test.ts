// Issue 12, item 1: a 202 always tells the truth. ingest is SIGKILLed between Kafka's acknowledgement and its
// answer (and once between admission and the produce), then the voter sends both kinds of follow-up: a resend
// with the same Idempotency-Key and a new vote with a new key for another option. Every 202 a voter gets names
// the vote that is counted for them (receipts, votes/me, results), and each voter is counted exactly once.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoll,
  devPrivateKeyPem,
  devToken,
  eventually,
  freePort,
  groupCommitted,
  isolatedEnv,
  migrateKeyspace,
  type RunningVotestream,
  repoRoot,
  type ServiceProcess,
  stack,
  startPipelineService,
  startVotestream,
  uniqueId,
} from '@votestream/devstack';
import { mintToken, voteIdOf } from '@votestream/ingest';
import { readReceipts } from '@votestream/read-models';
import { createCqlClient, topicNames } from '@votestream/runtime';
import { type AltchaChallenge, encodeAltchaPayload, solveAltcha } from '@votestream/sdk';
import test from 'ava';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a 202 names the counted vote: ingest killed after the Kafka ack, then a same-key resend and a new-key vote', async (t) => {
  t.timeout(6 * 60_000);
  const id = uniqueId('t202');
  const keyspace = `ks_${id}`;
  const pollId = `poll-${id}`;
  const privateKeyPem = devPrivateKeyPem();
  const cql = createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter });
  t.teardown(async () => {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
  });
  await migrateKeyspace(keyspace);

  const system: RunningVotestream = await startVotestream({
    prefix: `${id}.`,
    ports: { ingest: await freePort(), projections: await freePort(), streamMetrics: await freePort() },
    logDir: join(repoRoot, 'test-results/truthful-202-logs'),
    env: {
      ...isolatedEnv(id),
      ALTCHA_MAX_NUMBER: '1000',
      STREAM_GRACE_MS: '1000',
      // A short lease (the shortest these Kafka settings allow: 2 x (3 s connect + 2 s request) + 1 s + 2 s).
      PRODUCE_RETRIES: '1',
      PRODUCE_REQUEST_TIMEOUT_MS: '2000',
      PRODUCE_TIMEOUT_MS: '1000',
      VOTE_PRODUCE_DEADLINE_MS: '14000',
    },
  });
  let ingest: ServiceProcess = system.ingest;
  t.teardown(async () => {
    await ingest.stop();
    await system.stop();
  });
  const api = system.apiUrl;
  // ingest with fault injection (ingest/test/fault-entry.ts) in place of ingest/src/main.ts, same settings.
  const markers = mkdtempSync(join(tmpdir(), 'faults-'));
  const startFaultyIngest = async () => {
    const faulty = await startPipelineService('ingest', {
      name: 'ingest-faulty',
      entry: 'ingest/test/fault-entry.ts',
      port: Number(system.env.INGEST_PORT),
      metricsPort: Number(system.env.INGEST_METRICS_PORT),
      env: { ...system.env, FAULT_MARKER_DIR: markers },
      logDir: join(repoRoot, 'test-results/truthful-202-logs'),
    });
    ingest = faulty.process;
  };
  await system.ingest.stop();
  await startFaultyIngest();

  await createPoll(api, await devToken(`${pollId}-admin`, { admin: true }), { pollId, options: ['north', 'south'] });

  const accepted = new Map<string, string[]>(); // voterId -> voteIds of every 202 the voter got
  const solved = async (token: string) => {
    // A challenge is bound to (voter, poll): it is fetched with the voter's token.
    const challenge = (await (
      await fetch(`${api}/v1/challenge?pollId=${pollId}`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as AltchaChallenge;
    return encodeAltchaPayload(challenge, await solveAltcha(challenge));
  };
  /** One request; `reuse`: the solution a 503 gave back (it was not spent), sent again as a client would. */
  const send = async (voterId: string, key: string, optionId: string, reuse?: string) => {
    const token = await mintToken({ privateKeyPem, sub: voterId });
    const altcha = reuse ?? (await solved(token));
    try {
      const res = await fetch(`${api}/v1/polls/${pollId}/votes`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'idempotency-key': key,
          'x-altcha': altcha,
        },
        body: JSON.stringify({ optionId }),
      });
      const body = (await res.json()) as { voteId?: string; code?: string };
      if (res.status === 202 && body.voteId) accepted.set(voterId, [...(accepted.get(voterId) ?? []), body.voteId]);
      return {
        status: res.status,
        code: body.code,
        voteId: body.voteId,
        retryAfter: res.headers.get('retry-after'),
        altcha,
      };
    } catch {
      return { status: 0, code: 'no answer', voteId: undefined, retryAfter: null, altcha };
    }
  };
  /** Sends until the answer is not 503 (the earlier attempt undecided); every 503 says so with Retry-After. */
  const settled = async (voterId: string, key: string, optionId: string) => {
    const by = Date.now() + 120_000;
    let reuse: string | undefined;
    for (;;) {
      const a = await send(voterId, key, optionId, reuse);
      if (a.status !== 503 || Date.now() > by) return a;
      t.is(a.code, 'unavailable');
      t.true(Number(a.retryAfter) >= 1, 'a 503 carries Retry-After');
      await sleep(Number(a.retryAfter) * 1000); // as a client would
      reuse = a.altcha; // the 503 gave the solution back: challenges are rate-limited per voter
    }
  };
  /** One vote whose process dies at `point`: the voter gets no answer at all. */
  const killedAt = async (point: 'after-ack' | 'after-admit', voterId: string, optionId: string) => {
    const key = `kill-${point}-${randomUUID()}`;
    const a = await send(voterId, key, optionId);
    t.is(a.status, 0, `no answer when ingest dies ${point}`);
    t.not(await ingest.exited, 0);
    await startFaultyIngest();
    return key;
  };

  // A: acknowledged by Kafka, never answered; the voter resends with the same key, then tries another option.
  const voterA = `${id}-a`;
  const keyA = await killedAt('after-ack', voterA, 'north');
  const resendA = await settled(voterA, keyA, 'north');
  t.deepEqual([resendA.status, resendA.voteId], [202, voteIdOf(pollId, voterA, keyA)], JSON.stringify(resendA));
  const otherA = await settled(voterA, randomUUID(), 'south');
  t.deepEqual([otherA.status, otherA.code, otherA.voteId], [409, 'already_voted', resendA.voteId]);

  // B: acknowledged, never answered; the voter first tries another option with a new key, then resends.
  const voterB = `${id}-b`;
  const keyB = await killedAt('after-ack', voterB, 'north');
  const otherB = await settled(voterB, randomUUID(), 'south');
  t.deepEqual(
    [otherB.status, otherB.code, otherB.voteId],
    [409, 'already_voted', voteIdOf(pollId, voterB, keyB)],
    'the new key is told which vote counts (the unanswered one), never given a 202',
  );
  const resendB = await settled(voterB, keyB, 'north');
  t.deepEqual([resendB.status, resendB.voteId], [202, voteIdOf(pollId, voterB, keyB)], JSON.stringify(resendB));

  // C: killed after admission, before the produce: nothing reached Kafka. The stream's decision (none) frees the
  // voter: the new vote is accepted, and the old key can no longer get a 202.
  const voterC = `${id}-c`;
  const keyC = await killedAt('after-admit', voterC, 'north');
  const keyC2 = randomUUID();
  const otherC = await settled(voterC, keyC2, 'south');
  t.deepEqual([otherC.status, otherC.voteId], [202, voteIdOf(pollId, voterC, keyC2)], JSON.stringify(otherC));
  const resendC = await settled(voterC, keyC, 'north');
  t.deepEqual([resendC.status, resendC.code, resendC.voteId], [409, 'already_voted', otherC.voteId]);

  // The counted votes: exactly one per voter, and it is the vote of every 202 the voter got.
  const expected = new Map([
    [voterA, { voteId: voteIdOf(pollId, voterA, keyA), optionId: 'north' }],
    [voterB, { voteId: voteIdOf(pollId, voterB, keyB), optionId: 'north' }],
    [voterC, { voteId: voteIdOf(pollId, voterC, keyC2), optionId: 'south' }],
  ]);
  for (const [voterId, want] of expected) {
    t.deepEqual([...new Set(accepted.get(voterId))], [want.voteId], `${voterId}: every 202 names the counted vote`);
    const counted = await eventually(`${voterId}'s receipt`, async () => {
      const rs = await readReceipts(cql, keyspace, pollId, voterId);
      const c = rs.filter((r) => r.status === 'counted');
      return c.length > 0 ? c : undefined;
    });
    t.deepEqual(
      counted.map((r) => [r.voteId, r.optionId]),
      [[want.voteId, want.optionId]],
      `${voterId}: one counted vote`,
    );
    const me = await fetch(`${api}/v1/polls/${pollId}/votes/me`, {
      headers: { authorization: `Bearer ${await mintToken({ privateKeyPem, sub: voterId })}` },
    });
    t.like(await me.json(), { voteId: want.voteId, optionId: want.optionId, status: 'counted' });
  }
  const results = await eventually('results with 3 votes', async () => {
    const r = (await (await fetch(`${api}/v1/polls/${pollId}/results`)).json()) as {
      total: number;
      totals: Record<string, number>;
    };
    return r.total >= 3 ? r : undefined;
  });
  t.deepEqual(results.totals, { north: 2, south: 1 });
  // Results settle: every stage has committed everything written to its input (a resend counted twice would
  // show now), then nothing else is counted.
  const topics = topicNames(`${id}.`);
  await groupCommitted(`${id}-stream-dedupe`, topics.votes);
  await groupCommitted(`${id}-stream-tally`, topics.tallyPartials, { transactional: true });
  await groupCommitted(`${id}-projections-tallies`, topics.tallies, { transactional: true });
  const again = (await (await fetch(`${api}/v1/polls/${pollId}/results`)).json()) as { total: number };
  t.is(again.total, 3);
});
