// topicOffsets (stream/src/runtime/offsets.ts): reads are serialised, and calls for a topic whose read is queued and
// not started yet share it; a call made once a read has started gets a read of its own (its offsets are read after
// the call, which the restore needs: the ends it reads must be taken after the task's fence).
import test from 'ava';
import type { Admin } from 'kafkajs';
import { topicOffsets } from '../../src/runtime/offsets.ts';

/** A fake admin whose reads of a topic's offsets wait until the test releases them; `reads` counts them. */
function fakeAdmin() {
  const releases: Array<() => void> = [];
  const fake = {
    reads: 0,
    releases,
    async fetchTopicOffsets(topic: string) {
      fake.reads++;
      const high = String(fake.reads * 10);
      await new Promise<void>((resolve) => releases.push(resolve));
      return [{ partition: 0, offset: high, low: '0', high, topic }];
    },
  };
  return fake;
}

const tick = () => new Promise((r) => setImmediate(r));

test('calls for a topic made before its queued read starts share it; a call after the start reads again', async (t) => {
  const fake = fakeAdmin();
  const admin = fake as unknown as Admin;
  // Three calls in the same turn: one read.
  const first = [topicOffsets(admin, 'a'), topicOffsets(admin, 'a'), topicOffsets(admin, 'a')];
  await tick();
  t.is(fake.reads, 1);
  // A call while that read is in flight: a read of its own, after the first (serialised), not the first's result.
  const later = topicOffsets(admin, 'a');
  // Another topic queued behind it is a separate read.
  const other = topicOffsets(admin, 'b');
  await tick();
  t.is(fake.reads, 1, 'reads are serialised');
  const settled: Array<bigint | undefined> = [];
  for (const p of first) void p.then((r) => settled.push(r[0]?.high));
  fake.releases.shift()?.();
  await tick();
  t.deepEqual(settled, [10n, 10n, 10n], 'the three calls got the one read, released once');
  t.is(fake.reads, 2);
  fake.releases.shift()?.();
  t.is((await later)[0]?.high, 20n);
  await tick();
  t.is(fake.reads, 3);
  fake.releases.shift()?.();
  t.is((await other)[0]?.high, 30n);
});
