// The pure part of a commit's send (stream/src/runtime/collector.ts): records grouped per partition, placed as the
// producer's default partitioner places them, in send order, cut into produce requests of at most `max` records.
import { createRequire } from 'node:module';
import test from 'ava';
import { RecordCollector } from '../../src/runtime/collector.ts';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;
const partitionOf = (key: string, count: number) => (kafkajsMurmur2(Buffer.from(key)) & 0x7fffffff) % count;

const counts = new Map([
  ['decisions', 4],
  ['changelog', 4],
]);

test('one group per partition, placed as the default partitioner places keys; an explicit partition stays', (t) => {
  const out = new RecordCollector();
  const keys = Array.from({ length: 40 }, (_, i) => `poll-${i % 3}/voter-${i}`);
  for (const key of keys) out.send('decisions', key, Buffer.from(key));
  out.send('changelog', 'position', null, 3);
  const groups = out.partitionBatches(counts, 1000);
  const want = new Map<string, string[]>();
  for (const key of keys) {
    const id = `decisions/${partitionOf(key, 4)}`;
    want.set(id, [...(want.get(id) ?? []), key]);
  }
  want.set('changelog/3', ['position']);
  t.deepEqual(
    new Map(
      groups.map((batches) => {
        t.is(batches.length, 1);
        const [b] = batches;
        if (!b) throw new Error('empty group');
        for (const m of b.messages) t.is(m.partition, b.partition);
        return [`${b.topic}/${b.partition}`, b.messages.map((m) => String(m.key))];
      }),
    ),
    want,
  );
  t.deepEqual(out.topics(), ['decisions', 'changelog']);
});

test('a partition with more than max records is cut into requests in send order', (t) => {
  const out = new RecordCollector();
  for (let i = 0; i < 7; i++) out.send('changelog', `k${i}`, null, 1);
  out.send('changelog', 'other', null, 2);
  const groups = out.partitionBatches(counts, 3);
  t.deepEqual(
    groups.map((batches) => batches.map((b) => [b.partition, b.messages.map((m) => m.key)])),
    [
      [
        [1, ['k0', 'k1', 'k2']],
        [1, ['k3', 'k4', 'k5']],
        [1, ['k6']],
      ],
      [[2, ['other']]],
    ],
  );
});

test('a topic without a partition count, or a record with neither key nor partition, is refused', (t) => {
  const out = new RecordCollector();
  out.send('elsewhere', 'k', null);
  t.throws(() => out.partitionBatches(counts, 10), { message: 'no partition count for topic elsewhere' });
});
