import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import test from 'ava';
import { fastDefaultPartitioner, murmur2 } from '../../src/runtime/partitioner.ts';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

test('murmur2 equals KafkaJS murmur2 on keys of every tail length', (t) => {
  for (let i = 0; i < 20_000; i++) {
    const key = i % 2 ? Buffer.from(`poll-${randomUUID()}/voter-${i}`) : randomBytes(i % 67);
    if (murmur2(key) !== kafkajsMurmur2(key)) t.fail(`differs on ${key.toString('hex')}`);
  }
  t.pass();
});

test('the partitioner keeps an explicit partition and hashes keys like the default partitioner', (t) => {
  const partitionMetadata = Array.from({ length: 7 }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    partitionErrorCode: 0,
  }));
  const partition = fastDefaultPartitioner();
  t.is(partition({ topic: 'x', partitionMetadata, message: { key: 'k', value: null, partition: 5 } }), 5);
  for (const key of [
    'poll-1/voter-1',
    'p',
    '',
    'a-much-longer-poll-id/with-a-voter',
    'é€😀/v',
    'k'.repeat(1365),
    'k'.repeat(1366),
    '€'.repeat(3000),
    'p/v',
  ]) {
    const want = (kafkajsMurmur2(Buffer.from(key)) & 0x7fffffff) % 7;
    t.is(partition({ topic: 'x', partitionMetadata, message: { key, value: null } }), want);
    t.is(partition({ topic: 'x', partitionMetadata, message: { key: Buffer.from(key), value: null } }), want);
  }
});
