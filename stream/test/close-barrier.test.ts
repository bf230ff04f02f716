// The stream is the authoritative guard of a poll's close: a vote with event time >= the poll's closedAt must be
// rejected POLL_CLOSED even when it reaches the dedupe task right behind the CLOSED PollEvent, before the process's
// poll catalog would have read that event on its own. Each round: a poll is created, votes before the close are
// produced, then the CLOSED event and, right after its ack (nothing awaited in between), votes stamped at or after
// closedAt. Without the read barrier (catalog caught up with the polls end offsets read after the batch was
// fetched) some of those votes were COUNTED.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger, withTimeout } from '@votestream/runtime';
import type { PollDefinition, TallyUpdate, VoteCast, VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { eventually, stack, uniqueId } from '../../tests/support/stack.ts';
import { createStreamTopics, makePoll, makeVote, pipelineHarness, startProcessor } from './support.ts';

const options = ['yes', 'no'];
const rounds = 24;
const openPerPoll = 20;
const closedSends = 4; // sends of votes after the close, back to back
const closedPerSend = 6;
const catalogDelayMs = 250;

test('votes stamped at or after closedAt are POLL_CLOSED even right behind the CLOSED event; final tallies exclude them', async (t) => {
  t.timeout(170_000);
  const id = uniqueId('cls');
  const prefix = `t-${id}.`;
  const logger = createLogger('stream-test', 'warn');
  const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
  const admin = kafka.admin();
  await admin.connect();
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await admin.disconnect().catch(() => {});
  });
  await createStreamTopics(admin, prefix);
  const { encodeVote, encodePoll, producer, decisions, tallies } = await pipelineHarness(t, kafka, prefix, id);

  const processor = startProcessor(t, children, 'P', {
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
  await eventually(
    'processor owns every votes partition',
    async () =>
      new Set(
        processor
          .lines('task created')
          .filter((l) => l.stage === 'dedupe')
          .map((l) => l.partition),
      ).size === 4
        ? true
        : undefined,
    90_000,
  );

  const sendPoll = (type: 'CREATED' | 'CLOSED', poll: PollDefinition) =>
    producer.send({
      topic: `${prefix}polls`,
      acks: -1,
      messages: [
        { key: poll.pollId, value: encodePoll({ eventId: randomUUID(), type, occurredAt: Date.now(), poll }) },
      ],
    });
  const sendVotes = (votes: VoteCast[]) =>
    producer.send({
      topic: `${prefix}votes`,
      acks: -1,
      messages: votes.map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
    });

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
