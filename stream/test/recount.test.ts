import { runRecount } from '@votestream/devstack';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import test from 'ava';
import { eventually, stack } from '../../tests/support/stack.ts';
import type { RecountReport } from '../src/recount/sources.ts';
import { makePoll, makeVote, pipelineHarness, startProcessor, streamTest } from './support.ts';

const options = ['yes', 'no'];
const graceMs = 1000;
const idleTimeoutMs = 1000;

/** `npm run recount` on one poll; its JSON report typed. */
async function runRecountCli(env: Record<string, string>, pollId: string) {
  const run = await runRecount(env, pollId);
  return { ...run, report: run.report as RecountReport };
}

test('the recount replays the votes log, agrees with the decisions and CQL (close race and finalisation explained), and fails on a tampered tally or a forged decision', async (t) => {
  t.timeout(240_000);
  const { id, prefix, keyspace, kafka, cql, children } = await streamTest(t, 'rc', { cql: true });
  const { producer, decisions, tallies, sendPoll, sendVotes } = await pipelineHarness(t, kafka, prefix, id);
  const env = {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    CQL_KEYSPACE: keyspace,
    STREAM_APPLICATION_ID: `${id}-app`,
    STREAM_GRACE_MS: String(graceMs),
    STREAM_IDLE_TIMEOUT_MS: String(idleTimeoutMs),
  };
  await startProcessor(t, children, 'P', env);

  const decided = (votes: VoteCast[]) =>
    eventually(
      'every vote decided',
      async () => (votes.every((v) => decisions.has(v.voteId)) ? true : undefined),
      90_000,
    );

  // Poll A closes at its closesAt; poll B is open-ended and an admin closes it.
  const t0 = Date.now();
  const pollA = makePoll(`a-${id}`, options, { closesAt: t0 + 4000 });
  const pollB = makePoll(`b-${id}`, options);
  await sendPoll('CREATED', pollA);
  await sendPoll('CREATED', pollB);
  const counts: Record<string, Record<string, number>> = {
    [pollA.pollId]: { yes: 0, no: 0 },
    [pollB.pollId]: { yes: 0, no: 0 },
  };
  const first: VoteCast[] = [];
  for (const poll of [pollA, pollB]) {
    for (let i = 0; i < 60; i++) {
      const v = makeVote(poll.pollId, `v${i}`, options[i % 2]!, t0);
      first.push(v);
      counts[poll.pollId]![v.optionId]! += 1;
    }
    for (let i = 0; i < 15; i++) first.push(makeVote(poll.pollId, `v${i}`, 'yes', t0)); // second votes: DUPLICATE
  }
  first.push(makeVote(pollA.pollId, 'after-close', 'no', (pollA.closesAt as number) + 200)); // POLL_CLOSED
  await sendVotes(first);
  await decided(first);

  // The close race, made deterministic: a vote received after the admin's close instant is appended and
  // decided (COUNTED: the catalog does not know the close yet) before the CLOSED event is appended.
  const closedAt = Date.now() + 300;
  const racer = makeVote(pollB.pollId, 'racer', 'no', closedAt + 100);
  await sendVotes([racer]);
  await decided([racer]);
  t.is(decisions.get(racer.voteId)?.[0]?.outcome, 'COUNTED');
  counts[pollB.pollId]!.no! += 1;
  await sendPoll('CLOSED', { ...pollB, closedAt });

  // Both polls finalise by the idle watermark; then votes stamped before the close are refused POLL_CLOSED.
  for (const poll of [pollA, pollB])
    await eventually(
      `final tally of ${poll.pollId}`,
      async () => tallies.get(poll.pollId)?.find((u) => u.final),
      90_000,
    );
  const late = [
    makeVote(pollA.pollId, 'late-a', 'yes', (pollA.closesAt as number) - 1000),
    makeVote(pollB.pollId, 'late-b', 'yes', closedAt - 1000),
  ];
  await sendVotes(late);
  await decided(late);
  for (const v of late) t.is(decisions.get(v.voteId)?.[0]?.reason, 'POLL_CLOSED');
  for (const poll of [pollA, pollB])
    await eventually(
      `CQL final row of ${poll.pollId}`,
      async () => {
        const rs = await cql.execute(`SELECT final FROM ${keyspace}.poll_totals WHERE poll_id = ?`, [poll.pollId], {
          prepare: true,
        });
        return rs.first()?.get('final') === true ? true : undefined;
      },
      60_000,
    );

  // The recount agrees, for each poll, with the exact verdicts.
  const a = await runRecountCli(env, pollA.pollId);
  t.is(a.code, 0, a.stderr);
  t.deepEqual(a.report.recount.totals, counts[pollA.pollId]);
  t.deepEqual(a.report.recount.verdicts, {
    match: 76,
    resent: 0,
    'close-race': 0,
    finalisation: 1,
    differs: 0,
    'no-decision': 0,
    'many-decisions': 0,
  });
  t.deepEqual(
    a.report.sources.map((s) => [s.source, s.totals, s.final]),
    [
      ['recount', counts[pollA.pollId], null],
      ['decisions', counts[pollA.pollId], null],
      ['cql', counts[pollA.pollId], true],
    ],
  );
  t.true(a.report.agrees);

  const b = await runRecountCli(env, pollB.pollId);
  t.is(b.code, 0, b.stderr);
  t.deepEqual(b.report.recount.totals, counts[pollB.pollId]);
  t.deepEqual(b.report.recount.verdicts, {
    match: 75,
    resent: 0,
    'close-race': 1,
    finalisation: 1,
    differs: 0,
    'no-decision': 0,
    'many-decisions': 0,
  });
  t.true(b.report.agrees);

  // Tamper with the CQL tally (a later write timestamp wins): the recount names the source and the option.
  const row = (
    await cql.execute(`SELECT version FROM ${keyspace}.poll_totals WHERE poll_id = ?`, [pollA.pollId], {
      prepare: true,
    })
  ).first();
  const forgedTotals = { ...counts[pollA.pollId]!, yes: counts[pollA.pollId]!.yes! + 5 };
  await cql.execute(
    `UPDATE ${keyspace}.poll_totals USING TIMESTAMP ? SET totals = ? WHERE poll_id = ?`,
    [Number(row?.get('version')) + 1, forgedTotals, pollA.pollId],
    { prepare: true },
  );
  const tampered = await runRecountCli(env, pollA.pollId);
  t.is(tampered.code, 1);
  t.deepEqual(tampered.report.disagreements, [{ source: 'cql', options: ['yes'] }]);
  t.false(tampered.report.agrees);

  // A forged second decision for a counted vote of poll B (written outside any transaction): exactly-once
  // broken, named by vote.
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
  const original = decisions.get(first.find((v) => v.pollId === pollB.pollId)!.voteId)![0]!;
  await producer.send({
    topic: `${prefix}vote-decisions`,
    acks: -1,
    messages: [
      {
        key: `${original.vote.pollId}/${original.vote.voterId}`,
        value: serde.encoder('VoteDecision')({ ...original, decidedAt: Date.now() }),
      },
    ],
  });
  const forged = await runRecountCli(env, pollB.pollId);
  t.is(forged.code, 1);
  t.is(forged.report.recount.verdicts['many-decisions'], 1);
  t.deepEqual(
    forged.report.recount.differences.map((d) => [d.voteId, d.verdict]),
    [[original.vote.voteId, 'many-decisions']],
  );
  t.deepEqual(
    forged.report.disagreements.map((d) => d.source),
    ['decisions'],
  );
});
