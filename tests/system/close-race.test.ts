// A poll closed by an admin on one ingest instance while voters keep voting through another (as behind a load
// balancer): every voter answered 202 is counted, every voter refused 409 poll_closed is not, and the final
// totals are exactly the 202s. Before the close lead (POLL_CLOSE_LEAD_MS) and the acknowledgement-time check, the
// second instance answered 202 for votes it received after the close and before its catalog had read it; the
// stream decided those POLL_CLOSED.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  closePoll,
  createPoll,
  devPrivateKeyPem,
  devToken,
  dropKeyspace,
  eventually,
  finalResults,
  isolatedEnv,
  migrateKeyspace,
  repoRoot,
  startFleet,
  uniqueId,
} from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import test from 'ava';

test('a poll closed on one ingest instance while voters vote through another: every 202 counted, every poll_closed not, totals = the 202s', async (t) => {
  t.timeout(6 * 60_000);
  const id = uniqueId('close');
  const keyspace = `ks_${id}`;
  t.teardown(() => dropKeyspace(keyspace));
  await migrateKeyspace(keyspace);
  const fleet = await startFleet({
    prefix: `${id}.`,
    instances: { ingest: 2, stream: 1, projections: 1 },
    env: { ...isolatedEnv(id), CHALLENGE_POLICY: 'off', RATE_NETWORK_POINTS: '1000000', STREAM_GRACE_MS: '1000' },
    logDir: join(repoRoot, 'test-results/close-race-logs'),
  });
  t.teardown(() => fleet.stop());
  const [closer, voting] = fleet.apiUrls as [string, string];
  const admin = await devToken(`${id}-admin`, { admin: true });
  const { pollId } = await createPoll(closer, admin, { options: ['a', 'b'] });
  // The voting instance has read the new poll from the polls topic.
  await eventually('the poll on the voting instance', async () =>
    (await fetch(`${voting}/v1/polls/${pollId}`)).status === 200 ? true : undefined,
  );

  const privateKeyPem = devPrivateKeyPem();
  const answers = new Map<string, { status: number; code?: string; voteId?: string; optionId: string }>();
  let next = 0;
  /** One new voter's vote through the instance that does not take the close. */
  const vote = async () => {
    const i = next++;
    const voterId = `${id}-v${i}`;
    const optionId = i % 2 === 0 ? 'a' : 'b';
    const token = await mintToken({ privateKeyPem, sub: voterId });
    const res = await fetch(`${voting}/v1/polls/${pollId}/votes`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': randomUUID(),
      },
      body: JSON.stringify({ optionId }),
    });
    const body = (await res.json()) as { code?: string; voteId?: string };
    answers.set(voterId, { status: res.status, optionId, code: body.code, voteId: body.voteId });
  };
  // Four voters at a time, without pause, until the close has been in effect for a second.
  let closedAt = Number.POSITIVE_INFINITY;
  const voters = [...Array(4)].map(async () => {
    while (Date.now() < closedAt + 1000) await vote();
  });
  await eventually('votes accepted before the close', async () => (answers.size >= 20 ? true : undefined));
  closedAt = await closePoll(closer, admin, pollId);
  await Promise.all(voters);

  const accepted = [...answers.entries()].filter(([, a]) => a.status === 202);
  const closed = [...answers.entries()].filter(([, a]) => a.status === 409 && a.code === 'poll_closed');
  t.log(`${answers.size} voters: ${accepted.length} accepted, ${closed.length} refused poll_closed`);
  t.deepEqual(
    [...answers.values()].filter((a) => a.status !== 202 && !(a.status === 409 && a.code === 'poll_closed')),
    [],
    'every answer is a 202 or a 409 poll_closed',
  );
  t.true(accepted.length >= 20);
  t.true(closed.length > 0, 'votes kept coming after the close');

  // The final tally counts exactly the 202s, by option.
  const results = await finalResults(closer, pollId, 120_000);
  const expected = { a: 0, b: 0 } as Record<string, number>;
  for (const [, a] of accepted) expected[a.optionId] = (expected[a.optionId] ?? 0) + 1;
  t.deepEqual(results.totals, expected);
  t.is(results.total, accepted.length);

  // Each voter's own receipt: a 202 names the counted vote; a poll_closed voter has no counted vote.
  const receipt = async (voterId: string) => {
    const token = await mintToken({ privateKeyPem, sub: voterId });
    const res = await fetch(`${closer}/v1/polls/${pollId}/votes/me`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as { voteId?: string; status?: string } };
  };
  for (const [voterId, a] of accepted) {
    const r = await eventually(`the receipt of ${voterId}`, async () => {
      const x = await receipt(voterId);
      return x.body.status === 'counted' || x.body.status === 'rejected' ? x : undefined;
    });
    t.deepEqual([r.body.status, r.body.voteId], ['counted', a.voteId], voterId);
  }
  for (const [voterId] of closed.slice(0, 20)) {
    const r = await receipt(voterId);
    t.not(r.body.status, 'counted', voterId);
  }
});
