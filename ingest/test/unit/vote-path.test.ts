// The vote path's rules, in-process against fakes of Kafka, Redis and the catalog (vote-path-harness.ts): the
// exact status, problem code and Retry-After of each outcome, what reaches the producer, and what happens to the
// voter's guard. The same routes run against the real stack in ingest/test/*.test.ts and tests/system.
import { randomUUID } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { startVotePath, until, type VotePath } from './vote-path-harness.ts';

const test = anyTest as TestFn<{ path: VotePath }>;

test.beforeEach(async (t) => {
  t.context.path = await startVotePath({ env: { CHALLENGE_POLICY: 'off' } });
});
test.afterEach.always(async (t) => {
  await t.context.path?.close();
});

test('an accepted vote: 202 with its voteId only after Kafka acknowledged it, the guard completed, the outcome counted', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  path.producer.mode = 'hold';
  const voterId = `voter-${randomUUID()}`;
  let answered = false;
  const pending = path.vote(poll.pollId, { token: await path.token(voterId), optionId: 'b' }).finally(() => {
    answered = true;
  });
  await until(() => path.producer.held.length === 1, 'the vote reached the producer');
  t.false(answered, 'no answer while Kafka has not acknowledged');
  t.deepEqual(path.guards.calls, ['admit']);
  path.producer.release(true);
  const res = await pending;
  t.is(res.status, 202);
  t.deepEqual(Object.keys(res.body ?? {}), ['voteId', 'pollId', 'optionId', 'status']);
  t.like(res.body, { pollId: poll.pollId, optionId: 'b', status: 'accepted' });
  t.deepEqual(path.guards.calls, ['admit', 'complete']);
  const [vote, ...others] = path.acknowledgedVotes();
  t.is(others.length, 0);
  t.like(vote, {
    voteId: res.body?.voteId,
    pollId: poll.pollId,
    optionId: 'b',
    voterId,
    receivedAt: path.clock.ms,
    evidence: { challenge: 'NOT_REQUIRED', challengeId: null, networkPrefix: '127.0.0.0/24', userAgent: 'unit-test' },
  });
  t.is(String(path.producer.acknowledged[0]?.key), `${poll.pollId}/${voterId}`);
  t.deepEqual(await path.outcomes(), { accepted: 1 });
});

test('Kafka refuses the send: 503 unavailable (Retry-After 2), the guard kept as failed, and the next vote 503 at once while backing off', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  path.producer.mode = 'fail';
  const res = await path.vote(poll.pollId, { token: await path.token('voter-1') });
  t.is(res.status, 503);
  t.is(res.body?.code, 'unavailable');
  t.is(res.retryAfter, '2');
  t.deepEqual(path.guards.calls, ['admit', 'fail']);
  t.is(path.guards.voted.size, 1, 'a send that failed may have landed: the guard stays');

  // Within PRODUCE_BACKOFF_MS the batcher refuses at once: the vote never reaches the producer and is released.
  const sends = path.producer.sends;
  const next = await path.vote(poll.pollId, { token: await path.token('voter-2') });
  t.is(next.status, 503);
  t.is(next.body?.code, 'unavailable');
  t.is(next.retryAfter, String(Math.ceil(path.config.produceBackoffMs / 1000)));
  t.is(path.producer.sends, sends);
  t.deepEqual(path.guards.calls.slice(2), ['admit', 'release']);

  // After the back-off (the clock moves, no waiting) votes go through again.
  path.clock.advance(path.config.produceBackoffMs);
  path.producer.mode = 'ack';
  t.is((await path.vote(poll.pollId, { token: await path.token('voter-3') })).status, 202);
  t.deepEqual(await path.outcomes(), { unavailable: 2, accepted: 1 });
});

test('a vote still queued past its send deadline is never sent: 503 and the voter is free to vote again', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  path.producer.mode = 'hold';
  const first = path.vote(poll.pollId, { token: await path.token('voter-1') });
  await until(() => path.producer.held.length === 1, 'the first batch is on the wire');
  // One send at a time: the second vote waits behind the first batch, and its deadline passes meanwhile.
  const second = path.vote(poll.pollId, { token: await path.token('voter-2') });
  await until(() => path.batcher.votesInFlight === 2, 'the second vote is queued');
  path.clock.advance(path.config.voteProduceDeadlineMs);
  path.producer.release(true);
  t.is((await first).status, 202);
  const res = await second;
  t.is(res.status, 503);
  t.is(res.body?.code, 'unavailable');
  t.is(path.acknowledgedVotes().length, 1);
  t.is(path.producer.sends, 1, 'nothing of the late vote was handed to the producer');
  t.is(path.guards.calls.filter((c) => c === 'release').length, 1);
  t.is(await path.guards.pending(poll.pollId, 'voter-2'), null, 'the late vote left no guard');
});

test('the poll must exist, have the option and be open at the request time (injected clock)', async (t) => {
  const { path } = t.context;
  const token = await path.token('voter-1');
  const opensAt = path.clock.ms + 60_000;
  const poll = path.addPoll({ opensAt, closesAt: opensAt + 60_000 });
  const missing = await path.vote('p-missing', { token });
  t.is(missing.status, 404);
  t.is(missing.body?.code, 'poll_not_found');
  const option = await path.vote(poll.pollId, { token, optionId: 'zz' });
  t.is(option.status, 400);
  t.is(option.body?.code, 'unknown_option');
  const early = await path.vote(poll.pollId, { token });
  t.is(early.status, 409);
  t.is(early.body?.code, 'poll_not_open');
  path.clock.advance(60_000);
  t.is((await path.vote(poll.pollId, { token })).status, 202);
  path.clock.advance(60_000);
  const late = await path.vote(poll.pollId, { token: await path.token('voter-2') });
  t.is(late.status, 409);
  t.is(late.body?.code, 'poll_closed');
  t.is(path.acknowledgedVotes().length, 1);
  t.deepEqual(path.guards.calls, ['admit', 'complete'], 'refused votes never reach the guards');
});

test('token, revocation and rate limit are checked before any guard is taken', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  const noToken = await path.vote(poll.pollId, { token: '' });
  t.is(noToken.status, 401);
  t.is(noToken.body?.code, 'unauthenticated');
  path.revoked.add('stolen');
  const revoked = await path.vote(poll.pollId, { token: await path.token('voter-1', { jti: 'stolen' }) });
  t.is(revoked.status, 401);
  t.is(revoked.body?.detail, 'this token was revoked');
  path.limits.retryAfterS = 7;
  const limited = await path.vote(poll.pollId, { token: await path.token('voter-1') });
  t.is(limited.status, 429);
  t.is(limited.body?.code, 'rate_limited');
  t.is(limited.retryAfter, '7');
  const badKey = await path.vote(poll.pollId, { token: await path.token('voter-1'), idempotencyKey: 'short' });
  t.is(badKey.status, 400);
  t.is(badKey.body?.code, 'invalid_body');
  t.deepEqual(path.guards.calls, []);
  t.is(path.producer.sends, 0);
});

test('a revoked token is answered 401 before any other answer: a malformed request, an unknown poll, a rate limit', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  path.revoked.add('stolen');
  const token = await path.token('voter-1', { jti: 'stolen' });
  path.limits.retryAfterS = 7;
  const answers = [
    await path.vote(poll.pollId, { token, idempotencyKey: 'short' }),
    await path.vote('p-missing', { token }),
    await path.vote(poll.pollId, { token, optionId: 'zz' }),
    await path.vote(poll.pollId, { token }),
  ];
  t.deepEqual(
    answers.map((a) => [a.status, a.body?.code, a.body?.detail]),
    answers.map(() => [401, 'unauthenticated', 'this token was revoked']),
  );
  // The revocation read shares the rate limiters' round trip: only the well-formed request reached the limiters.
  t.is(path.limits.consumed, 1);
  t.deepEqual(path.guards.calls, []);
  t.is(path.producer.sends, 0);
});

test('a resend with the same Idempotency-Key replays the 202; the same key with another option is 422', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  const token = await path.token('voter-1');
  const idempotencyKey = randomUUID();
  const first = await path.vote(poll.pollId, { token, idempotencyKey, optionId: 'a' });
  t.is(first.status, 202);
  const again = await path.vote(poll.pollId, { token, idempotencyKey, optionId: 'a' });
  t.is(again.status, 202);
  t.deepEqual(again.body, first.body);
  const other = await path.vote(poll.pollId, { token, idempotencyKey, optionId: 'b' });
  t.is(other.status, 422);
  t.is(other.body?.code, 'idempotency_key_reused');
  const newKey = await path.vote(poll.pollId, { token, optionId: 'b' });
  t.is(newKey.status, 409);
  t.is(newKey.body?.code, 'already_voted');
  t.is(newKey.body?.voteId, first.body?.voteId);
  t.is(path.acknowledgedVotes().length, 1);
  t.deepEqual(await path.outcomes(), { accepted: 1, replayed: 1, idempotency_key_reused: 1, already_voted: 1 });
});

test('each admission answer maps to its exact status, code and Retry-After, and nothing is produced', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  const token = await path.token('voter-1');
  const cases = [
    { answer: { kind: 'key_reused' }, status: 422, code: 'idempotency_key_reused', retryAfter: null },
    // Retry when the attempt in flight has its answer: min(lease left, PRODUCE_TIMEOUT_MS), whole seconds.
    { answer: { kind: 'in_flight', retryAfterMs: 1200 }, status: 503, code: 'unavailable', retryAfter: '2' },
    { answer: { kind: 'in_flight', retryAfterMs: 3_600_000 }, status: 503, code: 'unavailable', retryAfter: '5' },
    { answer: { kind: 'already_voted', voteId: 'v-1' }, status: 409, code: 'already_voted', retryAfter: null },
    { answer: { kind: 'challenge_replayed' }, status: 403, code: 'challenge_failed', retryAfter: null },
  ] as const;
  for (const c of cases) {
    path.guards.script(c.answer);
    const res = await path.vote(poll.pollId, { token });
    t.is(res.status, c.status, c.answer.kind);
    t.is(res.body?.code, c.code, c.answer.kind);
    t.is(res.retryAfter, c.retryAfter, c.answer.kind);
  }
  path.guards.failure = new Error('redis gone');
  const down = await path.vote(poll.pollId, { token });
  t.is(down.status, 503);
  t.is(down.body?.detail, 'the vote guard store is unreachable');
  t.is(down.retryAfter, '2');
  t.is(path.producer.sends, 0);
});

test('a stale guard of another attempt is resolved by the stream: free, counted elsewhere, or undecided (503)', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  const token = await path.token('voter-1');
  const stale = { kind: 'stale', guard: 'v-old|a|1' } as const;
  path.guards.voted.set(`voted:{${poll.pollId}/voter-1}`, stale.guard);

  path.guards.script(stale);
  path.resolutions.push({ kind: 'undecided' });
  const undecided = await path.vote(poll.pollId, { token });
  t.is(undecided.status, 503);
  t.is(undecided.retryAfter, '1');
  t.deepEqual(path.guards.calls, ['admit']);

  path.guards.script(stale);
  path.resolutions.push(new Error('admin API timed out'));
  t.is((await path.vote(poll.pollId, { token })).status, 503);

  const counted = { voteId: 'v-old', optionId: 'a', status: 'counted', reason: null, countedVoteId: null } as const;
  path.guards.script(stale);
  path.resolutions.push({ kind: 'decided', counted: { ...counted, decidedAt: new Date(path.clock.ms).toISOString() } });
  const elsewhere = await path.vote(poll.pollId, { token });
  t.is(elsewhere.status, 409);
  t.is(elsewhere.body?.code, 'already_voted');
  t.is(elsewhere.body?.voteId, 'v-old');
  t.is(path.guards.voted.get(`voted:{${poll.pollId}/voter-1}`), 'v-old|a|0|D');

  // Nothing of the stale attempt was counted: the guard is freed and this request admitted in the same call.
  path.guards.voted.set(`voted:{${poll.pollId}/voter-1}`, stale.guard);
  path.guards.script(stale);
  path.resolutions.push({ kind: 'decided', counted: null });
  const calls = path.guards.calls.length;
  const free = await path.vote(poll.pollId, { token });
  t.is(free.status, 202);
  t.deepEqual(path.guards.calls.slice(calls), ['admit', 'settle:free', 'admit', 'complete']);
  t.is(path.acknowledgedVotes().length, 1);
});

test('the batcher full (PRODUCE_VOTES_IN_FLIGHT_MAX): 503 at once and the fresh admission released', async (t) => {
  const path = await startVotePath({
    env: { CHALLENGE_POLICY: 'off', PRODUCE_VOTES_IN_FLIGHT_MAX: '1', PRODUCE_BATCH_MESSAGES_MAX: '1' },
  });
  t.teardown(() => path.close());
  const poll = path.addPoll();
  path.producer.mode = 'hold';
  const first = path.vote(poll.pollId, { token: await path.token('voter-1') });
  await until(() => path.producer.held.length === 1, 'the first vote is on the wire');
  const full = await path.vote(poll.pollId, { token: await path.token('voter-2') });
  t.is(full.status, 503);
  t.is(full.body?.detail, '1 votes in flight (PRODUCE_VOTES_IN_FLIGHT_MAX)');
  t.is(full.retryAfter, '1');
  t.is(await path.guards.pending(poll.pollId, 'voter-2'), null);
  path.producer.release(true);
  t.is((await first).status, 202);
});

test('with CHALLENGE_POLICY=required: no solution 403 challenge_required; one for another voter 403 challenge_failed; a solved one is accepted once', async (t) => {
  const path = await startVotePath();
  t.teardown(() => path.close());
  const poll = path.addPoll();
  const token = await path.token('voter-1');
  const none = await path.vote(poll.pollId, { token });
  t.is(none.status, 403);
  t.is(none.body?.code, 'challenge_required');
  const foreign = await path.vote(poll.pollId, { token, altcha: await path.solved('voter-2', poll.pollId) });
  t.is(foreign.status, 403);
  t.is(foreign.body?.code, 'challenge_failed');
  const altcha = await path.solved('voter-1', poll.pollId);
  const ok = await path.vote(poll.pollId, { token, altcha });
  t.is(ok.status, 202);
  const [vote] = path.acknowledgedVotes();
  t.is(vote?.evidence.challenge, 'SOLVED');
  t.is(typeof vote?.evidence.challengeId, 'string');
  // The same solution for another vote of this voter in this poll: taken already.
  path.guards.voted.clear();
  const replayed = await path.vote(poll.pollId, { token, altcha });
  t.is(replayed.status, 403);
  t.is(replayed.body?.code, 'challenge_failed');
  t.is(path.acknowledgedVotes().length, 1);
});

test('an unknown route is 404 not_found and a body over BODY_LIMIT_BYTES is 400 invalid_body, as problem+json', async (t) => {
  const { path } = t.context;
  const poll = path.addPoll();
  const missing = await fetch(`${path.url}/v1/nothing`);
  t.is(missing.status, 404);
  t.is(missing.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  t.is((await missing.json()).code, 'not_found');
  const big = await path.vote(poll.pollId, {
    token: await path.token('voter-1'),
    body: JSON.stringify({ optionId: 'a', pad: 'x'.repeat(path.config.bodyLimitBytes) }),
  });
  t.is(big.status, 400);
  t.is(big.body?.code, 'invalid_body');
  t.is(big.body?.detail, `body larger than ${path.config.bodyLimitBytes} bytes`);
});

test('a vote Kafka acknowledges only after the poll closed + VOTE_CLOSE_ACK_GRACE_MS gets 503, not 202, and its guard is kept as failed', async (t) => {
  const { path } = t.context;
  const grace = path.config.voteCloseAckGraceMs;
  t.is(grace, 2000);
  path.producer.mode = 'hold';
  // A vote admitted while its poll is open; an admin closes the poll while the vote is in flight (a broker
  // failover at the close); Kafka acknowledges `ackAfterCloseMs` after the close.
  const castWhileClosing = async (voterId: string, ackAfterCloseMs: number) => {
    const poll = path.addPoll();
    const pending = path.vote(poll.pollId, { token: await path.token(voterId) });
    await until(() => path.producer.held.length === 1, 'the vote reached the producer');
    path.addPoll({ ...poll, closedAt: path.clock.ms + 10 });
    path.clock.advance(10 + ackAfterCloseMs);
    path.producer.release(true);
    return pending;
  };
  // Within the grace: 202 (the stream cannot have finalised the poll yet).
  const inTime = await castWhileClosing('voter-in-time', grace - 1);
  t.is(inTime.status, 202);
  t.deepEqual(path.guards.calls, ['admit', 'complete']);
  // At close + grace: 503 and the voter is pointed at votes/me; the guard stays (the vote is in Kafka).
  const late = await castWhileClosing('voter-too-late', grace);
  t.is(late.status, 503);
  t.is(late.body?.code, 'unavailable');
  t.is(late.retryAfter, '2');
  t.regex(String(late.body?.detail), /only after the poll closed/);
  t.is(path.acknowledgedVotes().length, 2, 'both are in Kafka: the stream decides the late one');
  t.deepEqual(path.guards.calls, ['admit', 'complete', 'admit', 'fail']);
  t.deepEqual(await path.outcomes(), { accepted: 1, unavailable: 1 });
});

test('a vote received at or after a close this instance had not applied yet gets 409 poll_closed, not 202 (the stream decides it POLL_CLOSED)', async (t) => {
  const { path } = t.context;
  path.producer.mode = 'hold';
  const poll = path.addPoll();
  const pending = path.vote(poll.pollId, { token: await path.token('voter-after-close') });
  await until(() => path.producer.held.length === 1, 'the vote reached the producer');
  // Another instance closed the poll at the very millisecond this one received the vote; the close reaches this
  // instance's catalog while the vote is in flight, well within the grace.
  path.addPoll({ ...poll, closedAt: path.clock.ms });
  path.clock.advance(1);
  path.producer.release(true);
  const res = await pending;
  t.is(res.status, 409);
  t.is(res.body?.code, 'poll_closed');
  t.is(path.acknowledgedVotes().length, 1, 'it is in Kafka: the stream rejects it as POLL_CLOSED');
  t.deepEqual(path.guards.calls, ['admit', 'fail']);
  t.deepEqual(await path.outcomes(), { poll_closed: 1 });
});
