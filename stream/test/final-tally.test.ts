import { groupCommitted } from '@votestream/devstack';
import { readTopicToEnd, withTimeout } from '@votestream/runtime';
import type { VoteCast, VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { eventually } from '../../tests/support/stack.ts';
import { makePoll, makeVote, pipelineHarness, sleep, startProcessor, streamTest, waitForTasks } from './support.ts';

const options = ['yes', 'no'];
const graceMs = 2000;
const idleTimeoutMs = 2000;

test('a closed poll gets a final tally after close + grace (idle watermark), in Kafka and CQL; later votes are POLL_CLOSED', async (t) => {
  t.timeout(90_000 + 90_000 + 60_000 + 2 * (60_000 + 90_000) + 2 * 60_000 + 60_000 + 30_000); // its waits' deadlines, plus set-up
  const { id, prefix, keyspace, kafka, cql, children } = await streamTest(t, 'fin', { cql: true });
  const { decisions, tallies, sendPoll, sendVotes } = await pipelineHarness(t, kafka, prefix, id);

  const processor = await startProcessor(t, children, 'P', {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    CQL_KEYSPACE: keyspace,
    STREAM_APPLICATION_ID: `${id}-app`,
    STREAM_GRACE_MS: String(graceMs),
    STREAM_IDLE_TIMEOUT_MS: String(idleTimeoutMs),
  });
  await waitForTasks(processor, 'dedupe', 4);

  // The test's own account per poll: expected outcome of every vote.
  const expectedReason = new Map<string, 'COUNTED' | 'DUPLICATE' | 'POLL_CLOSED'>();
  const firstVote = new Map<string, string>(); // pollId/voterId -> voteId of the counted vote
  const counts = new Map<string, Record<string, number>>();
  let seq = 0;
  const openVotes = (pollId: string, fresh: number, repeats: number, receivedAt: number): VoteCast[] => {
    const votes: VoteCast[] = [];
    for (let i = 0; i < fresh; i++) votes.push(makeVote(pollId, `v${seq++}`, options[seq % 2] as string, receivedAt));
    for (let i = 0; i < repeats; i++) votes.push(makeVote(pollId, `v${seq - fresh + i}`, 'yes', receivedAt));
    for (const v of votes) {
      const key = `${v.pollId}/${v.voterId}`;
      if (firstVote.has(key)) expectedReason.set(v.voteId, 'DUPLICATE');
      else {
        firstVote.set(key, v.voteId);
        expectedReason.set(v.voteId, 'COUNTED');
        const c = counts.get(pollId) ?? {};
        c[v.optionId] = (c[v.optionId] ?? 0) + 1;
        counts.set(pollId, c);
      }
    }
    return votes;
  };
  const closedVotes = (pollId: string, fresh: number, repeats: number, receivedAt: number): VoteCast[] => {
    const votes: VoteCast[] = [];
    for (let i = 0; i < fresh; i++) votes.push(makeVote(pollId, `late-${seq++}`, 'no', receivedAt));
    const voters = [...firstVote.keys()].filter((k) => k.startsWith(`${pollId}/`)).slice(0, repeats);
    for (const k of voters) votes.push(makeVote(pollId, k.slice(pollId.length + 1), 'no', receivedAt));
    for (const v of votes) expectedReason.set(v.voteId, 'POLL_CLOSED');
    return votes;
  };

  // Poll A closes by its closesAt; poll B is open-ended and closed by a CLOSED event.
  const t0 = Date.now();
  const pollA = makePoll(`a-${id}`, options, { closesAt: t0 + 6000 });
  const pollB = makePoll(`b-${id}`, options);
  await sendPoll('CREATED', pollA);
  await sendPoll('CREATED', pollB);
  const closesAt = pollA.closesAt as number;
  const allVotes: VoteCast[] = [
    ...openVotes(pollA.pollId, 400, 80, t0),
    ...openVotes(pollB.pollId, 300, 60, t0),
    // Accepted by ingest in the last instant before it learned of the close: event time after closesAt.
    ...closedVotes(pollA.pollId, 40, 20, closesAt + 300),
  ];
  await sendVotes(allVotes);
  await sleep(5);
  const closedAt = Date.now();
  await sendPoll('CLOSED', { ...pollB, closedAt });
  // Set-up guard (not an assertion about the system): no event time past close + grace, so only the idle
  // watermark can finalise.
  for (const v of allVotes) {
    const close = v.pollId === pollA.pollId ? closesAt : closedAt;
    if (v.receivedAt >= close + graceMs) throw new Error(`test set-up: vote ${v.voteId} is past close + grace`);
  }

  /**
   * Per partition of `topic`, the offset after its last committed record (read_committed, to the end offsets of
   * now): what a consumer that processed everything committed so far has reached, whatever aborted records and
   * transaction markers follow it.
   */
  const committedEnds = async (topic: string): Promise<Map<number, bigint>> => {
    const ends = new Map<number, bigint>();
    await readTopicToEnd(kafka, topic, (p, m) => void ends.set(p, BigInt(m.offset) + 1n), {
      timeoutMs: 60_000,
      groupIdPrefix: `${id}-ends`,
    });
    return ends;
  };
  const finalOf = (pollId: string) =>
    eventually(`final tally of ${pollId}`, async () => tallies.get(pollId)?.find((u) => u.final), 90_000);
  const [finalA, finalB] = await Promise.all([finalOf(pollA.pollId), finalOf(pollB.pollId)]);
  t.deepEqual(finalA.totals, counts.get(pollA.pollId));
  t.deepEqual(finalB.totals, counts.get(pollB.pollId));
  t.is(finalA.source, -1);
  t.is(finalA.total, 400);
  t.is(finalB.total, 300);
  // The final tally is emitted only after close + grace: its watermark (min over sources, minus grace) passed close.
  t.true(finalA.watermark >= closesAt, `watermark ${finalA.watermark} >= closesAt ${closesAt}`);
  t.true(finalB.watermark >= closedAt, `watermark ${finalB.watermark} >= closedAt ${closedAt}`);

  // Votes that reach the stream after the final tally: refused, and the final tally does not move.
  const after = [
    ...closedVotes(pollA.pollId, 30, 10, closesAt - 1000), // event time before the close, but after the final
    ...closedVotes(pollB.pollId, 30, 10, closedAt + 500),
  ];
  allVotes.push(...after);
  await sendVotes(after);
  await eventually(
    'every vote decided',
    async () => (allVotes.every((v) => decisions.has(v.voteId)) ? true : undefined),
    60_000,
  );
  for (const v of allVotes) {
    const list = decisions.get(v.voteId) ?? [];
    t.is(list.length, 1, `vote ${v.voteId} has ${list.length} decisions`);
    const d = list[0] as VoteDecision;
    const want = expectedReason.get(v.voteId);
    if (want === 'COUNTED') t.is(d.outcome, 'COUNTED');
    else {
      t.is(d.outcome, 'REJECTED');
      t.is(d.reason as string | null, want ?? null, `vote of ${v.voterId} in ${v.pollId} at ${v.receivedAt}`);
    }
  }
  // Any (wrong) later tally those votes could cause is written and read by now: the tally stage has processed
  // every partial committed so far (the dedupe stage decided every vote, above, in the transactions that wrote its
  // partials), and this test's reader has read every tally committed so far.
  await groupCommitted(`${id}-app-tally`, `${prefix}tally-partials`, {
    upTo: await committedEnds(`${prefix}tally-partials`),
    timeoutMs: 90_000,
  });
  await groupCommitted(`${id}-verify`, `${prefix}tallies`, {
    upTo: await committedEnds(`${prefix}tallies`),
    timeoutMs: 90_000,
  });
  for (const [pollId, fin] of [
    [pollA.pollId, finalA],
    [pollB.pollId, finalB],
  ] as const) {
    const list = tallies.get(pollId) ?? [];
    const finals = list.filter((u) => u.final);
    t.is(finals.length, 1, `${pollId}: one final tally`);
    t.is(list[list.length - 1]?.version, fin.version, `${pollId}: nothing after the final tally`);
  }

  // CQL: poll_totals holds the final tally, marked final.
  for (const [pollId, fin] of [
    [pollA.pollId, finalA],
    [pollB.pollId, finalB],
  ] as const) {
    const row = await eventually(
      `CQL final row of ${pollId}`,
      async () => {
        const rs = await cql.execute(
          `SELECT totals, total, final, version FROM ${keyspace}.poll_totals WHERE poll_id = ?`,
          [pollId],
          { prepare: true },
        );
        const r = rs.first();
        return r?.get('final') === true ? r : undefined;
      },
      60_000,
    );
    const cqlTotals: Record<string, number> = {};
    for (const [k, v] of Object.entries(row.get('totals') as Record<string, unknown>)) cqlTotals[k] = Number(v);
    t.deepEqual(cqlTotals, counts.get(pollId));
    t.is(Number(row.get('total')), fin.total);
    t.is(Number(row.get('version')), fin.version);
  }
  processor.child.kill('SIGTERM');
  await withTimeout(processor.exited, 60_000, 'the processor exits after SIGTERM');
});
