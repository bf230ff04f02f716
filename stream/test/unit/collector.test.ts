// The pure part of a commit's send (stream/src/runtime/collector.ts): records placed on partitions as the producer
// would place them, and the partitions a send resolved without acknowledging, which are sent again.
import { createRequire } from 'node:module';
import test from 'ava';
import type { RecordMetadata } from 'kafkajs';
import { placeOnPartitions, RecordCollector, unacknowledged } from '../../src/runtime/collector.ts';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

const ack = (topicName: string, partition: number): RecordMetadata => ({ topicName, partition, errorCode: 0 });

test('records are placed as the default partitioner places them; an explicit partition stays', (t) => {
  const out = new RecordCollector();
  const keys = ['poll-1/voter-1', 'poll-1/voter-2', 'poll-2/voter-1', 'x'];
  for (const key of keys) out.send('decisions', key, Buffer.from('v'));
  out.send('changelog', 'position', null, 3);
  const [slice] = out.topicMessageSlices(100);
  const placed = placeOnPartitions(
    slice ?? [],
    new Map([
      ['decisions', 12],
      ['changelog', 12],
    ]),
  );
  t.deepEqual(
    placed.map(({ topic, messages }) => ({ topic, partitions: messages.map((m) => m.partition) })),
    [
      { topic: 'decisions', partitions: keys.map((k) => (kafkajsMurmur2(Buffer.from(k)) & 0x7fffffff) % 12) },
      { topic: 'changelog', partitions: [3] },
    ],
  );
  t.throws(() => placeOnPartitions(slice ?? [], new Map([['decisions', 12]])), {
    message: 'no partition count for topic changelog',
  });
});

test('a partition without an acknowledgement is sent again with all its records, in order', (t) => {
  const sent = [
    {
      topic: 'decisions',
      messages: [
        { key: 'a', value: null, partition: 0 },
        { key: 'b', value: null, partition: 1 },
        { key: 'c', value: null, partition: 0 },
        { key: 'd', value: null, partition: 2 },
      ],
    },
    { topic: 'changelog', messages: [{ key: 'e', value: null, partition: 1 }] },
  ];
  // As KafkaJS 2.2.4 resolves after a broker failure: partition 0 of decisions moved to a broker that had
  // already answered, so it is missing from the acknowledgements.
  t.deepEqual(unacknowledged(sent, [ack('decisions', 1), ack('decisions', 2), ack('changelog', 1)]), [
    {
      topic: 'decisions',
      messages: [
        { key: 'a', value: null, partition: 0 },
        { key: 'c', value: null, partition: 0 },
      ],
    },
  ]);
  // Same partition number, other topic: not an acknowledgement of it.
  t.deepEqual(unacknowledged(sent, [ack('decisions', 0), ack('decisions', 1), ack('decisions', 2)]), [
    { topic: 'changelog', messages: [{ key: 'e', value: null, partition: 1 }] },
  ]);
  t.deepEqual(
    unacknowledged(sent, [ack('decisions', 0), ack('decisions', 1), ack('decisions', 2), ack('changelog', 1)]),
    [],
  );
});
