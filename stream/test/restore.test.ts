// The changelog restore reader (stream/src/runtime/restore.ts) on the real broker: read_committed (an aborted
// transaction's records and the markers are never applied), from each partition's start to the end offset read at
// the start, only the asked partitions (several in one read, each getting exactly its records), every committed
// record of a partition in offset order.
import { waitForLeaders } from '@votestream/runtime';
import test, { type ExecutionContext } from 'ava';
import { type ChangelogPartition, type ChangelogRecord, restoreChangelogs } from '../src/runtime/restore.ts';
import { type StreamTest, streamTest } from './support.ts';

/** Restores partitions in one read: the records applied, in order, and the count the reader returned. */
async function restore(s: StreamTest, partitions: ChangelogPartition[]) {
  const applied: ChangelogRecord[] = [];
  const read = await restoreChangelogs({
    kafka: s.kafka,
    admin: s.admin,
    partitions,
    logger: s.logger,
    apply: (r) => applied.push(r),
  });
  return { read, applied };
}

/** Compacted changelog topics of `partitions` partitions, and a transactional writer of them. */
async function changelogs(t: ExecutionContext, s: StreamTest, names: string[], partitions: number) {
  const topics = names.map((n) => `${s.prefix}${n}`);
  await s.admin.createTopics({
    waitForLeaders: false,
    topics: topics.map((topic) => ({
      topic,
      numPartitions: partitions,
      replicationFactor: 1,
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
    })),
  });
  await waitForLeaders(s.admin, topics);
  const transactionalId = `${s.id}-tx`;
  const producerOf = () =>
    s.kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const producer = producerOf();
  await producer.connect();
  t.teardown(() => producer.disconnect().catch(() => {}));
  const send = async (
    commit: boolean,
    messages: Array<{ topic: string; partition: number; key: string; value: string | null }>,
  ) => {
    const tx = await producer.transaction();
    await tx.sendBatch({
      topicMessages: messages.map(({ topic, ...m }) => ({ topic, messages: [m] })),
    });
    await (commit ? tx.commit() : tx.abort());
  };
  /** As a task does before it restores: the previous owner's producer fenced, its last markers written. */
  const fence = async () => {
    const p = producerOf();
    await p.connect();
    await p.disconnect();
  };
  return { topics, send, fence };
}

const asPairs = (records: ChangelogRecord[]) =>
  records.map((r) => [r.key.toString(), r.value === null ? null : r.value.toString()]);

test('a changelog partition restores its committed records only, in offset order', async (t) => {
  const s = await streamTest(t, 'restore');
  const {
    topics: [topic = ''],
    send,
    fence,
  } = await changelogs(t, s, ['store-changelog'], 2);
  const m = (key: string, value: string | null, partition = 1) => ({ topic, partition, key, value });
  await send(true, [m('a', 'a1'), m('b', 'b1'), m('other-partition', 'x', 0)]);
  await send(false, [m('a', 'aborted'), m('c', 'aborted')]);
  await send(true, [m('b', null), m('d', 'd1'), m('a', 'a2')]);
  await fence();

  const { read, applied } = await restore(s, [{ topic, partition: 1 }]);
  // 5 committed records in partition 1 (the 2 aborted ones and the 3 markers are not records of the store).
  t.is(read, 5);
  t.deepEqual(asPairs(applied), [
    ['a', 'a1'],
    ['b', 'b1'],
    ['b', null],
    ['d', 'd1'],
    ['a', 'a2'],
  ]);
  t.true(applied.every((r) => r.topic === topic && r.partition === 1));
});

test('several changelog partitions read in one restore each get exactly their committed records, in offset order', async (t) => {
  const s = await streamTest(t, 'restore-many');
  const {
    topics: [a = '', b = ''],
    send,
    fence,
  } = await changelogs(t, s, ['a-changelog', 'b-changelog'], 3);
  const m = (topic: string, partition: number, key: string, value: string | null) => ({ topic, partition, key, value });
  // 400 committed records in each asked partition (and in unasked ones), interleaved in transactions, with an
  // aborted transaction over all of them in the middle.
  for (let i = 0; i < 400; i += 100) {
    const batch = (v: string) =>
      Array.from({ length: 100 }, (_, j) => [
        m(a, 0, `k${i + j}`, `a0-${v}${i + j}`),
        m(a, 2, `k${i + j}`, `a2-${v}${i + j}`),
        m(b, 1, `k${i + j}`, j % 10 === 0 ? null : `b1-${v}${i + j}`),
        m(a, 1, `k${i + j}`, `not-asked-${v}${i + j}`),
        m(b, 0, `k${i + j}`, `not-asked-${v}${i + j}`),
      ]).flat();
    await send(true, batch(''));
    if (i === 200) await send(false, batch('aborted-'));
  }
  await fence();

  const asked = [
    { topic: a, partition: 0 },
    { topic: a, partition: 2 },
    { topic: b, partition: 1 },
  ];
  const { read, applied } = await restore(s, asked);
  t.is(read, 1200);
  const expected = (topic: string, prefix: string) =>
    Array.from({ length: 400 }, (_, i) => [`k${i}`, topic === b && i % 10 === 0 ? null : `${prefix}${i}`]);
  const of = (topic: string, partition: number) =>
    applied.filter((r) => r.topic === topic && r.partition === partition);
  t.deepEqual(asPairs(of(a, 0)), expected(a, 'a0-'));
  t.deepEqual(asPairs(of(a, 2)), expected(a, 'a2-'));
  t.deepEqual(asPairs(of(b, 1)), expected(b, 'b1-'));
  t.is(of(a, 1).length + of(b, 0).length, 0);
});

test('an empty changelog partition restores nothing', async (t) => {
  const s = await streamTest(t, 'restore-empty');
  const {
    topics: [topic = ''],
  } = await changelogs(t, s, ['store-changelog'], 1);
  const { read, applied } = await restore(s, [{ topic, partition: 0 }]);
  t.is(read, 0);
  t.is(applied.length, 0);
});
