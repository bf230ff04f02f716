// Unit test of the producer replacement logic (votes/producer.ts) with a fake KafkaJS client: pure logic, no
// broker. The broker behaviour it answers (OUT_OF_ORDER_SEQUENCE_NUMBER for ever after a failed request) is
// exercised for real by tests/system/cluster.test.ts on the 3-node cluster.
import { createLogger } from '@votestream/runtime';
import test from 'ava';
import { type Kafka, Partitioners, type Producer, type ProducerRecord } from 'kafkajs';
import { createResettingProducer } from '../../src/votes/producer.ts';

function fakeKafka(failures: Set<number>, failPartition?: number) {
  const made: { id: number; sends: number; connected: boolean }[] = [];
  const requests: { partitions: number[]; keys: string[] }[] = [];
  const kafka = {
    admin() {
      return {
        async connect() {},
        async disconnect() {},
        async fetchTopicMetadata() {
          return {
            topics: [{ name: 'votes', partitions: [0, 1, 2, 3].map((partitionId) => ({ partitionId, leader: 1 })) }],
          };
        },
      };
    },
    producer() {
      const state = { id: made.length, sends: 0, connected: false };
      made.push(state);
      return {
        async connect() {
          state.connected = true;
        },
        async disconnect() {
          state.connected = false;
        },
        async send(r: ProducerRecord) {
          state.sends++;
          const partitions = [...new Set(r.messages.map((m) => m.partition ?? -1))];
          requests.push({ partitions, keys: r.messages.map((m) => String(m.key)) });
          if (failPartition !== undefined && partitions.includes(failPartition)) throw new Error('NOT_LEADER');
          if (failures.has(state.id)) throw new Error('The broker received an out of order sequence number');
          return [];
        },
      } as unknown as Producer;
    },
  } as unknown as Kafka;
  return { kafka, made, requests };
}

const record: ProducerRecord = { topic: 'votes', messages: [{ value: 'v' }] };

test('a failed send replaces the producer: the next send goes through a new one and the old one is closed', async (t) => {
  const { kafka, made } = fakeKafka(new Set([0]));
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  await t.throwsAsync(p.send(record), { message: /out of order/ });
  await p.send(record);
  t.is(made.length, 2);
  t.is(p.resets, 1);
  t.deepEqual(
    made.map((m) => ({ sends: m.sends, connected: m.connected })),
    [
      { sends: 1, connected: false },
      { sends: 1, connected: true },
    ],
  );
  await p.disconnect();
  t.false(made[1]?.connected);
});

test('sends that succeed keep the same producer', async (t) => {
  const { kafka, made } = fakeKafka(new Set());
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  for (let i = 0; i < 5; i++) await p.send(record);
  t.is(made.length, 1);
  t.is(p.resets, 0);
});

test('a batch over several partitions goes out as one send per partition (one leader each), partitions as KafkaJS picks them', async (t) => {
  const { kafka, requests } = fakeKafka(new Set());
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  const keys = [...Array(40)].map((_, i) => `poll/voter-${i}`);
  await p.send({ topic: 'votes', messages: keys.map((key) => ({ key, value: 'v' })) });
  t.true(requests.length > 1);
  for (const r of requests) t.is(r.partitions.length, 1);
  t.deepEqual(requests.flatMap((r) => r.keys).sort(), [...keys].sort());
  // The same partitions as KafkaJS's default partitioner on its own (murmur2 of the key, 4 partitions).
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1, 2, 3].map((partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    partitionErrorCode: 0,
  }));
  for (const r of requests)
    for (const key of r.keys)
      t.is(r.partitions[0], partitioner({ topic: 'votes', partitionMetadata, message: { key, value: 'v' } }));
});

test('a batch fails as a whole when the send of one of its partitions fails', async (t) => {
  const { kafka } = fakeKafka(new Set(), 2);
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  const keys = [...Array(40)].map((_, i) => `poll/voter-${i}`);
  await t.throwsAsync(p.send({ topic: 'votes', messages: keys.map((key) => ({ key, value: 'v' })) }), {
    message: 'NOT_LEADER',
  });
});
