// PartitionCounts (stream/src/runtime/partitions.ts), what a commit uses to split its records by partition: each
// topic's count is read once, with partitionCount's wait for a topic whose metadata is not there yet (a new topic
// on a cluster), not a failed commit. A fake admin; no stack.
import test from 'ava';
import type { Admin } from 'kafkajs';
import { PartitionCounts } from '../../src/runtime/partitions.ts';

function fakeAdmin(answers: Record<string, number[]>) {
  const reads: string[] = [];
  const admin = {
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => {
      const [topic] = topics as [string];
      reads.push(topic);
      const list = answers[topic] ?? [];
      const n = list.length > 1 ? (list.shift() as number) : (list[0] ?? 0);
      return {
        topics: [{ name: topic, partitions: Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 1 })) }],
      };
    },
  } as unknown as Admin;
  return { admin, reads };
}

test('each topic is read once; a topic whose metadata lists no partitions yet is waited for, not failed', async (t) => {
  // `late` lists no partitions on the first read (its metadata has not reached this broker yet), then 3.
  const { admin, reads } = fakeAdmin({ a: [12], late: [0, 3] });
  const counts = new PartitionCounts(admin);
  t.deepEqual(
    [...(await counts.of(['a', 'late']))],
    [
      ['a', 12],
      ['late', 3],
    ],
  );
  t.deepEqual(
    [...(await counts.of(['late', 'a']))],
    [
      ['late', 3],
      ['a', 12],
    ],
  );
  t.deepEqual(reads, ['a', 'late', 'late'], 'the second call reads nothing');
});
