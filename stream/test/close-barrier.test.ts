import { withTimeout } from '@votestream/runtime';
import type { PollDefinition, TallyUpdate, VoteCast, VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { eventually } from '../../tests/support/stack.ts';
import { makePoll, makeVote, pipelineHarness, startProcessor, streamTest, waitForTasks } from './support.ts';

const options = ['yes', 'no'];
const rounds = 24;
const openPerPoll = 20;
const closedSends = 4; // sends of votes after the close, back to back
const closedPerSend = 6;
const catalogDelayMs = 250;

test('votes stamped at or after closedAt are POLL_CLOSED even right behind the CLOSED event; final tallies exclude them', async (t) => {
  t.timeout(170_000);
  const { id, prefix, kafka, children } = await streamTest(t, 'cls');
  const { decisions, tallies, sendPoll, sendVotes } = await pipelineHarness(t, kafka, prefix, id);

  const processor = await startProcessor(t, children, 'P', {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    STREAM_STAGES: 'dedupe,tally',
    STREAM_APPLICATION_ID: `${id}-app`,
    STREAM_GRACE_MS: '1000',
    STREAM_IDLE_TIMEOUT_MS: '2000',
    // Fault injection: the catalog applies each polls batch this much later (a slow catalog fetch, a GC pause),
    // so a vote batch fetched right after the CLOSED event is ready before the catalog would know the close.
    STREAM_TEST_CATALOG_APPLY_DELAY_MS: String(catalogDelayMs),
  });
  await waitForTasks(processor, 'dedupe', 4);

  const expected = new Map<string, 'COUNTED' | 'POLL_CLOSED'>(); // voteId -> outcome
  const counts = new Map<string, Record<string, number>>(); // pollId -> the test's own count before the close
  const allVotes: VoteCast[] = [];
  const polls: PollDefinition[] = [];
  const closedAtOf = new Map<string, number>();
  // Phase 1: every poll is created and has votes, and all of them are decided (COUNTED: the catalog knows every
  // poll), so in phase 2 no vote waits for the catalog as an unknown poll would.
  for (let r = 0; r < rounds; r++) {
    const poll = makePoll(`p${r}-${id}`, options);
    polls.push(poll);
    await sendPoll('CREATED', poll);
    const open: VoteCast[] = [];
    const c: Record<string, number> = {};
    for (let i = 0; i < openPerPoll; i++) {
      const v = makeVote(poll.pollId, `v${i}`, options[i % 2] as string, Date.now());
      open.push(v);
      expected.set(v.voteId, 'COUNTED');
      c[v.optionId] = (c[v.optionId] ?? 0) + 1;
    }
    counts.set(poll.pollId, c);
    allVotes.push(...open);
    await sendVotes(open);
  }
  await eventually(
    'every vote before the close decided',
    async () => (allVotes.every((v) => decisions.has(v.voteId)) ? true : undefined),
    90_000,
  );
  // Phase 2, poll after poll with nothing awaited but the acks: the close is stamped (after every vote above),
  // the CLOSED event is produced and right behind it votes stamped at or after closedAt (fresh voters and voters
  // who already voted).
  for (const poll of polls) {
    const closedAt = Date.now() + 1;
    closedAtOf.set(poll.pollId, closedAt);
    const after: VoteCast[][] = [];
    for (let s = 0; s < closedSends; s++) {
      const batch: VoteCast[] = [];
      for (let i = 0; i < closedPerSend; i++) {
        const voter = i % 3 === 0 ? `v${(s * closedPerSend + i) % openPerPoll}` : `late${s}-${i}`;
        const v = makeVote(poll.pollId, voter, 'no', closedAt + (i % 2) * 5);
        batch.push(v);
        expected.set(v.voteId, 'POLL_CLOSED');
      }
      after.push(batch);
      allVotes.push(...batch);
    }
    await sendPoll('CLOSED', { ...poll, closedAt });
    for (const batch of after) await sendVotes(batch);
  }

  await eventually(
    'every vote decided',
    async () => (allVotes.every((v) => decisions.has(v.voteId)) ? true : undefined),
    90_000,
  );
  const wrong: string[] = [];
  for (const v of allVotes) {
    const list = decisions.get(v.voteId) ?? [];
    t.is(list.length, 1, `vote ${v.voteId} has ${list.length} decisions`);
    const d = list[0] as VoteDecision;
    const want = expected.get(v.voteId);
    const got = d.outcome === 'COUNTED' ? 'COUNTED' : d.reason;
    if (got !== want) wrong.push(`${v.pollId}/${v.voterId} at ${v.receivedAt}: ${got}, want ${want}`);
  }
  t.deepEqual(wrong, [], `${wrong.length} votes decided wrongly`);

  // Final tallies (the idle watermark passes closedAt + grace): exactly the votes before the close.
  const finals = await Promise.all(
    polls.map((p) =>
      eventually(`final tally of ${p.pollId}`, async () => tallies.get(p.pollId)?.find((u) => u.final), 90_000),
    ),
  );
  for (const [i, p] of polls.entries()) {
    const fin = finals[i] as TallyUpdate;
    t.deepEqual(fin.totals, counts.get(p.pollId), `${p.pollId}: final totals`);
    t.is(fin.total, openPerPoll);
    t.true(fin.watermark >= (closedAtOf.get(p.pollId) as number));
  }
  processor.child.kill('SIGTERM');
  await withTimeout(processor.exited, 60_000, 'the processor exits after SIGTERM');
});
