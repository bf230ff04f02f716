// The changelog restore reader (stream/src/runtime/restore.ts) on the real broker: read_committed (an aborted
// transaction's records and the markers are never applied), from the partition's start to the end offset read at
// the start, only the asked partition, every committed record in offset order.
import { waitForLeaders } from '@votestream/runtime';
import test from 'ava';
import { type ChangelogRecord, restoreChangelogPartition } from '../src/runtime/restore.ts';
import { type StreamTest, streamTest } from './support.ts';

/** Restores one partition: the records applied, in order, and the count the reader returned. */
async function restore(s: StreamTest, topic: string, partition: number) {
  const applied: ChangelogRecord[] = [];
  const read = await restoreChangelogPartition({
    kafka: s.kafka,
    admin: s.admin,
    topic,
    partition,
    logger: s.logger,
    apply: (r) => applied.push(r),
  });
  return { read, applied };
}

test('a changelog partition restores its committed records only, in offset order', async (t) => {
  const s = await streamTest(t, 'restore');
  const topic = `${s.prefix}store-changelog`;
  await s.admin.createTopics({
    waitForLeaders: false,
    topics: [
      { topic, numPartitions: 2, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
    ],
  });
  await waitForLeaders(s.admin, [topic]);
  const producer = s.kafka.producer({
    transactionalId: `${s.id}-tx`,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  t.teardown(() => producer.disconnect().catch(() => {}));
  const send = async (commit: boolean, messages: Array<{ key: string; value: string | null; partition?: number }>) => {
    const tx = await producer.transaction();
    await tx.send({ topic, messages: messages.map((m) => ({ partition: 1, ...m })) });
    await (commit ? tx.commit() : tx.abort());
  };
  await send(true, [
    { key: 'a', value: 'a1' },
    { key: 'b', value: 'b1' },
    { key: 'other-partition', value: 'x', partition: 0 },
  ]);
  await send(false, [
    { key: 'a', value: 'aborted' },
    { key: 'c', value: 'aborted' },
  ]);
  await send(true, [
    { key: 'b', value: null },
    { key: 'd', value: 'd1' },
    { key: 'a', value: 'a2' },
  ]);

  const { read, applied } = await restore(s, topic, 1);
  // 5 committed records in partition 1 (the 2 aborted ones and the 3 markers are not records of the store).
  t.is(read, 5);
  t.deepEqual(
    applied.map((r) => [r.key, r.value === null ? null : r.value.toString()]),
    [
      ['a', 'a1'],
      ['b', 'b1'],
      ['b', null],
      ['d', 'd1'],
      ['a', 'a2'],
    ],
  );
  t.true(applied.every((r) => r.topic === topic));
});

test('an empty changelog partition restores nothing', async (t) => {
  const s = await streamTest(t, 'restore-empty');
  const topic = `${s.prefix}store-changelog`;
  await s.admin.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
  await waitForLeaders(s.admin, [topic]);
  const { read, applied } = await restore(s, topic, 0);
  t.is(read, 0);
  t.is(applied.length, 0);
});
