// waitForServedPartitions over a fake admin (pure logic of the wait): a leader in the metadata is not enough, the
// end offsets must be readable too (a KRaft broker can name itself leader before it serves the partition).
import test from 'ava';
import type { Admin } from 'kafkajs';
import { waitForServedPartitions } from '../../src/topics.ts';

function fakeAdmin(offsetFailures: number): { admin: Admin; offsetReads: () => number } {
  let reads = 0;
  const admin = {
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => ({
      topics: topics.map((name) => ({
        name,
        partitions: [0, 1].map((partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1] })),
      })),
    }),
    fetchTopicOffsets: async (_topic: string) => {
      reads++;
      if (reads <= offsetFailures)
        throw Object.assign(new Error('This server is not the leader for that topic-partition'), {
          type: 'NOT_LEADER_FOR_PARTITION',
        });
      return [0, 1].map((partition) => ({ partition, offset: '0', high: '0', low: '0' }));
    },
  } as unknown as Admin;
  return { admin, offsetReads: () => reads };
}

test('a topic whose leaders are named but do not yet answer for their partitions is waited for, not returned', async (t) => {
  const { admin, offsetReads } = fakeAdmin(1);
  await waitForServedPartitions(admin, ['votes']);
  t.is(offsetReads(), 2, 'one refused read of the end offsets, then one that answered');
});

test('topics whose leaders answer at once are returned after one round', async (t) => {
  const { admin, offsetReads } = fakeAdmin(0);
  await waitForServedPartitions(admin, ['votes', 'polls']);
  t.is(offsetReads(), 2);
});
