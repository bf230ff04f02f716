// The dedupe processor (stage 1) on TaskDriver: decisions, counts, its changelogs and a restore from them, on a
// manual clock with a fake poll catalog. The same rules over real Kafka: stream/test/exactly-once.test.ts.

import type { VoteCast } from '@votestream/schemas';
import test from 'ava';
import { ChangelogCorruptError, IllegalTaskStateError } from '../../src/runtime/errors.ts';
import { ManualClock, TaskDriver } from '../../src/testing/task-driver.ts';
import { makePoll, makeVote } from '../support.ts';
import { config, dedupeProcessor, dedupeTopics, FakeCatalog, serde } from './fixtures.ts';

const t0 = 1_700_000_000_000;
const encodeVote = serde.encoder('VoteCast');
const decodeDecision = serde.decoder('VoteDecision');
const decodeTally = serde.decoder('TallyUpdate');
const input = (v: VoteCast) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) });

async function setUp() {
  const clock = new ManualClock(t0);
  const catalog = new FakeCatalog();
  catalog.put(makePoll('p1', ['a', 'b'], { opensAt: t0 - 60_000 }));
  const driver = await TaskDriver.create(dedupeProcessor(0, catalog, clock), {
    clock,
    deadLetterTopic: 'dead-letters',
  });
  const decisions = () =>
    Promise.all(driver.output(dedupeTopics.voteDecisions).map((r) => decodeDecision(r.value as Buffer)));
  const partials = () =>
    Promise.all(driver.output(dedupeTopics.tallyPartials).map((r) => decodeTally(r.value as Buffer)));
  return { clock, catalog, driver, decisions, partials };
}

test('the first vote of a voter counts; a second vote by the same voter is DUPLICATE naming the first', async (t) => {
  const { driver, decisions, partials } = await setUp();
  const first = makeVote('p1', 'v1', 'a', t0);
  await driver.pipe([input(first), input(makeVote('p1', 'v2', 'b', t0 + 1)), input(makeVote('p1', 'v1', 'b', t0 + 2))]);
  const d = await decisions();
  t.deepEqual(
    d.map((x) => [x.vote.voterId, x.outcome, x.reason, x.countedVoteId]),
    [
      ['v1', 'COUNTED', null, null],
      ['v2', 'COUNTED', null, null],
      ['v1', 'REJECTED', 'DUPLICATE', first.voteId],
    ],
  );
  const p = await partials();
  t.is(p.length, 1);
  t.deepEqual(p[0]?.totals, { a: 1, b: 1 });
  t.is(p[0]?.total, 2);
  t.is(p[0]?.source, 0);
  // Stage 1 writes decisions, partials and its two changelogs, nothing else (analytics is a stage of its own).
  t.deepEqual([...new Set(driver.log().map((r) => r.topic))].sort(), [
    dedupeTopics.dedupeChangelog,
    dedupeTopics.tallyChangelog,
    dedupeTopics.tallyPartials,
    dedupeTopics.voteDecisions,
  ]);
  t.is(driver.commits, 1);
  t.is(driver.committedOffset, 3n);
});

test('decidedAt is the injected clock, not the wall clock', async (t) => {
  const { driver, clock, decisions } = await setUp();
  clock.advance(12_345);
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  t.deepEqual(
    (await decisions()).map((d) => d.decidedAt),
    [t0 + 12_345],
  );
});

test('unknown poll, unknown option and a vote before opensAt are rejected with their reason; nothing counts', async (t) => {
  const { driver, catalog, decisions, partials } = await setUp();
  catalog.put(makePoll('later', ['a'], { opensAt: t0 + 60_000 }));
  await driver.pipe([
    input(makeVote('nope', 'v1', 'a', t0)),
    input(makeVote('p1', 'v1', 'z', t0)),
    input(makeVote('later', 'v1', 'a', t0)),
  ]);
  t.deepEqual(
    (await decisions()).map((d) => [d.outcome, d.reason]),
    [
      ['REJECTED', 'UNKNOWN_POLL'],
      ['REJECTED', 'UNKNOWN_OPTION'],
      ['REJECTED', 'POLL_NOT_OPEN'],
    ],
  );
  t.is(catalog.catchUps, 1, 'an unknown poll makes the catalog catch up once per batch');
  t.deepEqual(
    (await partials()).map((p) => [p.pollId, p.total]),
    [
      ['p1', 0],
      ['later', 0],
    ],
    'rejections move the audit chain: partials of known polls, with no votes counted',
  );
  t.is(driver.changelog(dedupeTopics.dedupeChangelog).size, 0);
});

test('the counted vote resent (same voteId) gets no second decision and counts once', async (t) => {
  const { driver, decisions, partials } = await setUp();
  const v = makeVote('p1', 'v1', 'a', t0);
  await driver.pipe([input(v)]);
  await driver.pipe([input(v)]);
  t.is((await decisions()).length, 1);
  t.deepEqual(
    (await partials()).map((p) => p.total),
    [1],
  );
});

test('a new task restored from the changelogs remembers voters, counts and its position', async (t) => {
  const { driver, clock, catalog } = await setUp();
  const first = makeVote('p1', 'v1', 'a', t0);
  await driver.pipe([input(first), input(makeVote('p1', 'v2', 'a', t0 + 1))]);
  t.deepEqual(
    [...driver.changelog(dedupeTopics.dedupeChangelog).entries()].map(([k, v]) => [k, v.toString()]),
    [
      ['p1/v1', first.voteId],
      ['p1/v2', driver.changelog(dedupeTopics.dedupeChangelog).get('p1/v2')?.toString()],
    ],
  );
  await driver.close();
  t.is(driver.state, 'closed');

  const restored = await TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log: driver.log() });
  t.is(restored.state, 'running');
  t.is(restored.position, 2n, 'the position comes back from the changelog the processor declared');
  await restored.pipe([input(makeVote('p1', 'v1', 'b', t0 + 2)), input(makeVote('p1', 'v3', 'b', t0 + 3))]);
  const d = await Promise.all(
    restored
      .output(dedupeTopics.voteDecisions)
      .slice(2)
      .map((r) => decodeDecision(r.value as Buffer)),
  );
  t.deepEqual(
    d.map((x) => [x.vote.voterId, x.outcome, x.reason, x.countedVoteId]),
    [
      ['v1', 'REJECTED', 'DUPLICATE', first.voteId],
      ['v3', 'COUNTED', null, null],
    ],
  );
  const last = restored.output(dedupeTopics.tallyPartials).at(-1);
  const p = await decodeTally(last?.value as Buffer);
  t.deepEqual(p.totals, { a: 2, b: 1 });
  t.is(p.audit?.heads[0]?.count, 4, 'the audit chain continues from the restored head');
});

test('an idle task advances its watermark by the clock and emits the final partial; later votes are POLL_CLOSED', async (t) => {
  const { driver, clock, catalog, decisions, partials } = await setUp();
  catalog.put(makePoll('p1', ['a', 'b'], { opensAt: t0 - 60_000, closesAt: t0 + 1000 }));
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  clock.advance(config.idleTimeoutMs + 1000 + config.graceMs); // watermark = now - idle = close + grace
  await driver.punctuate();
  const final = (await partials()).at(-1);
  t.is(final?.final, true);
  t.deepEqual(final?.totals, { a: 1 });
  await driver.pipe([input(makeVote('p1', 'v2', 'a', t0 + 500))]); // before closesAt, but the poll is final here
  t.deepEqual(
    (await decisions()).map((d) => [d.vote.voterId, d.outcome, d.reason]),
    [
      ['v1', 'COUNTED', null],
      ['v2', 'REJECTED', 'POLL_CLOSED'],
    ],
  );
  t.is((await partials()).at(-1)?.final, true);
});

test('a vote whose window closed is counted and marked late', async (t) => {
  const { driver, decisions } = await setUp();
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0 + 10_000)), input(makeVote('p1', 'v2', 'a', t0))]);
  t.deepEqual(
    (await decisions()).map((d) => [d.outcome, d.late]),
    [
      ['COUNTED', false],
      ['COUNTED', true],
    ],
  );
});

test('an undecodable vote is dead-lettered in the same commit, with no decision', async (t) => {
  const { driver, decisions } = await setUp();
  await driver.pipe([{ key: 'p1/x', value: Buffer.from('not avro') }, input(makeVote('p1', 'v1', 'a', t0))]);
  const dead = driver.output('dead-letters');
  t.is(dead.length, 1);
  t.is(dead[0]?.value?.toString(), 'not avro');
  t.is(dead[0]?.headers['dlq.source.offset'], '0');
  t.is((await decisions()).length, 1);
  t.is(driver.commits, 1);
});

test('a failed commit leaves nothing committed; the batch processed again is decided once', async (t) => {
  const { driver, clock, catalog } = await setUp();
  driver.failNextCommit = new Error('broker gone');
  await t.throwsAsync(driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]), { message: 'broker gone' });
  t.deepEqual(driver.log(), []);
  // The runtime throws the task away and rebuilds it from the changelog: nothing of the failed batch remains.
  const rebuilt = await TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log: driver.log() });
  await rebuilt.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  const d = await Promise.all(rebuilt.output(dedupeTopics.voteDecisions).map((r) => decodeDecision(r.value as Buffer)));
  t.deepEqual(
    d.map((x) => x.outcome),
    ['COUNTED'],
  );
});

test('a restore applies the dedupe records of interleaved polls from their bytes, each voter in its own poll', async (t) => {
  const { driver, clock, catalog } = await setUp();
  catalog.put(makePoll('p2', ['a', 'b'], { opensAt: t0 - 60_000 }));
  catalog.put(makePoll('pö3', ['a', 'b'], { opensAt: t0 - 60_000 }));
  // Runs of one poll and changes between polls (the restore decodes a pollId only when it changes), a non-ASCII
  // pollId and voterId (hashed and decoded from their UTF-8 bytes).
  const firsts = [
    makeVote('p1', 'v1', 'a', t0),
    makeVote('p1', 'v2', 'a', t0),
    makeVote('p2', 'v1', 'a', t0),
    makeVote('pö3', 'vötér', 'a', t0),
    makeVote('p1', 'v3', 'a', t0),
    makeVote('p2', 'v2', 'a', t0),
  ];
  await driver.pipe(firsts.map(input));
  await driver.close();

  const restored = await TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log: driver.log() });
  const again = [...firsts.map((v) => makeVote(v.pollId, v.voterId, 'b', t0 + 1)), makeVote('p2', 'v3', 'b', t0 + 1)];
  await restored.pipe(again.map(input));
  const d = await Promise.all(
    restored
      .output(dedupeTopics.voteDecisions)
      .slice(firsts.length)
      .map((r) => decodeDecision(r.value as Buffer)),
  );
  t.deepEqual(
    d.map((x) => [x.vote.pollId, x.vote.voterId, x.outcome, x.reason, x.countedVoteId]),
    [
      ...firsts.map((v) => [v.pollId, v.voterId, 'REJECTED', 'DUPLICATE', v.voteId]),
      ['p2', 'v3', 'COUNTED', null, null],
    ],
  );
});

test('a dedupe changelog key without a pollId stops the restore with ChangelogCorruptError', async (t) => {
  const { driver, clock, catalog } = await setUp();
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  const log = driver.log().map((r) => (r.key === 'p1/v1' ? { ...r, key: '/v1' } : r));
  await t.throwsAsync(TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log }), {
    instanceOf: ChangelogCorruptError,
    message: /dedupe store: key must be pollId\/voterId, got "\/v1"/,
  });
});

test('a dedupe changelog value that is no voteId stops the restore with ChangelogCorruptError', async (t) => {
  const { driver, clock, catalog } = await setUp();
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  for (const bad of [
    'not-a-uuid',
    '',
    '0123456789abcdef0123456789abcdef',
    `${'g'.repeat(8)}-0000-0000-0000-000000000000`,
  ]) {
    const log = driver.log().map((r) => (r.key === 'p1/v1' ? { ...r, value: Buffer.from(bad) } : r));
    await t.throwsAsync(
      TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log }),
      { instanceOf: ChangelogCorruptError, message: /dedupe store: value must be a voteId/ },
      JSON.stringify(bad),
    );
  }
});

test('a corrupt changelog record stops the restore with ChangelogCorruptError (fatal), the task closed', async (t) => {
  const { driver, clock, catalog } = await setUp();
  await driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]);
  const log = driver
    .log()
    .map((r) =>
      r.key === 't/p1' ? { ...r, value: Buffer.from('{"version":1,"totals":{"a":"one"},"late":0,"final":false}') } : r,
    );
  await t.throwsAsync(TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log }), {
    instanceOf: ChangelogCorruptError,
  });
});

test('a closed task refuses batches: IllegalTaskStateError', async (t) => {
  const { driver } = await setUp();
  await driver.close();
  await t.throwsAsync(async () => driver.pipe([input(makeVote('p1', 'v1', 'a', t0))]), {
    instanceOf: IllegalTaskStateError,
  });
  await t.throwsAsync(async () => driver.close(), { instanceOf: IllegalTaskStateError });
});

test('after a batch failed halfway the task commits nothing more: a punctuation queued behind it does not commit its counts', async (t) => {
  const clock = new ManualClock(t0);
  const poll = makePoll('p1', ['a', 'b'], { opensAt: t0 - 60_000 });
  // The catalog cannot be read when a vote names a poll it does not know yet (a broker failure): the batch
  // throws after it has already counted v1 in memory.
  class UnreachableCatalog extends FakeCatalog {
    override async catchUp(): Promise<void> {
      throw new Error('catalog unreachable');
    }
  }
  const catalog = new UnreachableCatalog();
  catalog.put(poll);
  const driver = await TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock });
  const v1 = makeVote('p1', 'v1', 'a', t0);
  const piped = driver.pipe([input(v1), input(makeVote('p-new', 'v2', 'a', t0))]);
  const punctuated = driver.punctuate(); // queued behind the batch, as the punctuation timer does
  await t.throwsAsync(piped, { message: 'catalog unreachable' });
  await punctuated;
  t.deepEqual(driver.log(), [], 'neither the batch nor the punctuation committed anything');

  // Rebuilt from the changelogs (nothing) and fed the batch again: v1 is counted once.
  const rebuilt = await TaskDriver.create(dedupeProcessor(0, catalog, clock), { clock, log: driver.log() });
  await rebuilt.pipe([input(v1)]);
  const partials = await Promise.all(
    rebuilt.output(dedupeTopics.tallyPartials).map((r) => decodeTally(r.value as Buffer)),
  );
  t.deepEqual(
    partials.map((p) => p.totals),
    [{ a: 1 }],
  );
});
