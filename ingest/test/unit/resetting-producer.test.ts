// Unit test of the producer replacement logic (votes/producer.ts) with a fake KafkaJS client: pure logic, no
// broker. The broker behaviour it answers (OUT_OF_ORDER_SEQUENCE_NUMBER for ever after a failed request) is
// exercised for real by tests/system/cluster.test.ts on the 3-node cluster.
import { createLogger } from '@votestream/runtime';
import test from 'ava';
import { type Kafka, Partitioners, type Producer, type ProducerRecord } from 'kafkajs';
import { createResettingProducer } from '../../src/votes/producer.ts';

function fakeKafka(
  failures: Set<number>,
  failPartition?: number,
  connectFailures = new Set<number>(),
  hold?: { partition: number; until: Promise<void> },
) {
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
          if (connectFailures.has(state.id)) throw new Error('Connection error: connect ECONNREFUSED');
          state.connected = true;
        },
        async disconnect() {
          state.connected = false;
        },
        async send(r: ProducerRecord) {
          state.sends++;
          const partitions = [...new Set(r.messages.map((m) => m.partition ?? -1))];
          requests.push({ partitions, keys: r.messages.map((m) => String(m.key)) });
          if (hold && partitions.includes(hold.partition)) await hold.until;
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

test('a producer whose send failed is never used again: while its replacement cannot connect every send fails, then a fresh one takes over', async (t) => {
  // Producer 0 fails a send (its request may have landed: its sequence numbers must not be given to other votes);
  // producer 1 cannot connect (Kafka still unreachable); producer 2 connects.
  const { kafka, made } = fakeKafka(new Set([0]), undefined, new Set([1]));
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  await t.throwsAsync(p.send(record), { message: /out of order/ });
  await t.throwsAsync(p.send(record), { message: /ECONNREFUSED/ });
  t.is(made[0]?.sends, 1, 'the failed producer took no second send');
  t.false(made[0]?.connected, 'and is disconnected');
  await p.send(record);
  t.is(p.resets, 1);
  t.deepEqual(
    made.map((m) => ({ sends: m.sends, connected: m.connected })),
    [
      { sends: 1, connected: false },
      { sends: 0, connected: false },
      { sends: 1, connected: true },
    ],
  );
  await p.disconnect();
  t.false(made[2]?.connected);
});

test('a retired producer is disconnected only after its sends of other partitions, in flight when it failed, settle', async (t) => {
  let release: () => void = () => undefined;
  const hold = {
    partition: 0,
    until: new Promise<void>((r) => {
      release = r;
    }),
  };
  const { kafka, made, requests } = fakeKafka(new Set(), 2, new Set(), hold);
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  const keys = [...Array(40)].map((_, i) => `poll/voter-${i}`);
  const sending = p.send({ topic: 'votes', messages: keys.map((key) => ({ key, value: 'v' })) });
  const settled = sending.then(
    () => 'resolved',
    (err: Error) => err.message,
  );
  // Every partition's send has started; partition 2's failed and retired producer 0, partition 0's is held on it.
  while (requests.length < 4) await new Promise((r) => setTimeout(r, 1));
  await new Promise((r) => setTimeout(r, 10));
  t.true(made[0]?.connected, 'still connected while a send of it is in flight');
  release();
  t.is(await settled, 'NOT_LEADER');
  t.false(made[0]?.connected, 'disconnected once nothing of it is in flight');
  await p.disconnect();
});
