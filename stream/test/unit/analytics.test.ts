// The analytics stage on TaskDriver: each decision of its vote-decisions partition becomes exactly one
// pseudonymous VoteAnalytics record, in the transaction that moves the decisions' offsets. Over real Kafka (stage 1
// and this stage, CQL salts): stream/test/analytics.test.ts.

import type { VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { pseudonymOf } from '../../src/analytics/pseudonymise.ts';
import { ChangelogCorruptError } from '../../src/runtime/errors.ts';
import { ManualClock, TaskDriver } from '../../src/testing/task-driver.ts';
import { makeVote } from '../support.ts';
import { analyticsProcessor, analyticsTopics, serde } from './fixtures.ts';

const t0 = 1_700_000_000_000;
const encodeDecision = serde.encoder('VoteDecision');
const decodeAnalytics = serde.decoder('VoteAnalytics');
const saltA = Buffer.alloc(32, 1);
const saltB = Buffer.alloc(32, 2);
const salts = new Map([
  ['pa', saltA],
  ['pb-async', saltB],
]);

function decision(pollId: string, voterId: string, counted: boolean): VoteDecision {
  const vote = makeVote(pollId, voterId, 'yes', t0);
  vote.evidence.networkPrefix = '198.51.100.0/24';
  vote.evidence.userAgent = 'votestream-sdk/2.4.1 (Android 15)';
  return {
    vote,
    outcome: counted ? 'COUNTED' : 'REJECTED',
    reason: counted ? null : 'DUPLICATE',
    countedVoteId: counted ? null : 'f'.repeat(32),
    late: false,
    windowStart: t0,
    decidedAt: t0 + 5,
  };
}
const input = (d: VoteDecision) => ({ key: `${d.vote.pollId}/${d.vote.voterId}`, value: encodeDecision(d) });

test('every decision becomes one analytics record keyed by poll and pseudonym, in one commit with the offsets', async (t) => {
  const clock = new ManualClock(t0);
  const driver = await TaskDriver.create(analyticsProcessor(3, salts), { clock, partition: 3 });
  const ds = [decision('pa', 'v1', true), decision('pb-async', 'v1', true), decision('pa', 'v1', false)];
  await driver.pipe(ds.map(input));

  const out = driver.output(analyticsTopics.analyticsVotes);
  t.deepEqual(
    out.map((r) => r.key),
    [`pa/${pseudonymOf(saltA, 'v1')}`, `pb-async/${pseudonymOf(saltB, 'v1')}`, `pa/${pseudonymOf(saltA, 'v1')}`],
  );
  const values = await Promise.all(out.map((r) => decodeAnalytics(r.value as Buffer)));
  t.deepEqual(
    values.map((a) => [a.pollId, a.counted, a.reason, a.networkPrefix, a.clientFamily]),
    [
      ['pa', true, null, '198.51.0.0/16', 'votestream-sdk/2'],
      ['pb-async', true, null, '198.51.0.0/16', 'votestream-sdk/2'],
      ['pa', false, 'DUPLICATE', '198.51.0.0/16', 'votestream-sdk/2'],
    ],
  );
  t.false(JSON.stringify(values).includes('v1'), 'no voter id in any analytics record');
  // Nothing but the analytics records and the task's position (in its own changelog) is written.
  t.deepEqual([...new Set(driver.log().map((r) => r.topic))].sort(), [
    analyticsTopics.positionChangelog,
    analyticsTopics.analyticsVotes,
  ]);
  t.is(driver.commits, 1);
  t.is(driver.committedOffset, 3n);
});

test('an undecodable decision is dead-lettered in the same commit, with no analytics record', async (t) => {
  const clock = new ManualClock(t0);
  const driver = await TaskDriver.create(analyticsProcessor(0, salts), { clock, deadLetterTopic: 'dead-letters' });
  await driver.pipe([{ key: 'pa/x', value: Buffer.from('not avro') }, input(decision('pa', 'v2', true))]);
  const dead = driver.output('dead-letters');
  t.is(dead.length, 1);
  t.is(dead[0]?.value?.toString(), 'not avro');
  t.is(dead[0]?.headers['dlq.source.offset'], '0');
  t.deepEqual(
    driver.output(analyticsTopics.analyticsVotes).map((r) => r.key),
    [`pa/${pseudonymOf(saltA, 'v2')}`],
  );
  t.is(driver.commits, 1);
  t.is(driver.committedOffset, 2n);
});

test('a failed commit writes nothing; the task rebuilt from the log resumes at the committed position', async (t) => {
  const clock = new ManualClock(t0);
  const driver = await TaskDriver.create(analyticsProcessor(0, salts), { clock });
  await driver.pipe([input(decision('pa', 'v1', true))]);
  driver.failNextCommit = new Error('broker gone');
  await t.throwsAsync(driver.pipe([input(decision('pa', 'v2', true))]), { message: 'broker gone' });
  t.is(driver.output(analyticsTopics.analyticsVotes).length, 1, 'only the first commit is in the log');

  const rebuilt = await TaskDriver.create(analyticsProcessor(0, salts), { clock, log: driver.log() });
  t.is(rebuilt.state, 'running');
  t.is(rebuilt.position, 1n, 'the position comes back from the position changelog');
});

test('a record in its changelog other than the position fails the restore (ChangelogCorruptError)', async (t) => {
  const clock = new ManualClock(t0);
  const log = [
    {
      topic: analyticsTopics.positionChangelog,
      partition: 0,
      key: 'not-a-position',
      value: Buffer.from('x'),
      headers: {},
    },
  ];
  await t.throwsAsync(TaskDriver.create(analyticsProcessor(0, salts), { clock, log }), {
    instanceOf: ChangelogCorruptError,
  });
});
