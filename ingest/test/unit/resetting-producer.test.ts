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
  /** KafkaJS's retry defect: the send resolves, this partition missing from its acknowledgements. */
  unacknowledgedPartition?: number,
) {
  const made: { id: number; sends: number; connected: boolean }[] = [];
  const requests: { partitions: number[]; keys: string[]; messagePartitions: (number | undefined)[] }[] = [];
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
          requests.push({
            partitions,
            keys: r.messages.map((m) => String(m.key)),
            messagePartitions: r.messages.map((m) => m.partition),
          });
          if (hold && partitions.includes(hold.partition)) await hold.until;
          if (failPartition !== undefined && partitions.includes(failPartition)) throw new Error('NOT_LEADER');
          if (failures.has(state.id)) throw new Error('The broker received an out of order sequence number');
          return partitions
            .filter((partition) => partition !== unacknowledgedPartition)
            .map((partition) => ({ topicName: r.topic, partition, errorCode: 0 }));
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

test('a batch over several partitions goes out as one send, each message with the partition KafkaJS would pick', async (t) => {
  const { kafka, requests } = fakeKafka(new Set());
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  const keys = [...Array(40)].map((_, i) => `poll/voter-${i}`);
  await p.send({ topic: 'votes', messages: keys.map((key) => ({ key, value: 'v' })) });
  t.is(requests.length, 1);
  t.deepEqual(requests[0]?.keys, keys);
  t.is(requests[0]?.partitions.length, 4, 'the 40 keys fall on all 4 partitions');
  // The same partitions as KafkaJS's default partitioner on its own (murmur2 of the key, 4 partitions).
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1, 2, 3].map((partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    partitionErrorCode: 0,
  }));
  t.deepEqual(
    requests[0]?.messagePartitions,
    keys.map((key) => partitioner({ topic: 'votes', partitionMetadata, message: { key, value: 'v' } })),
  );
});

test('a send KafkaJS resolves without the acknowledgement of one of its partitions fails, and its producer is retired', async (t) => {
  const { kafka, made } = fakeKafka(new Set(), undefined, new Set(), undefined, 2);
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  const keys = [...Array(40)].map((_, i) => `poll/voter-${i}`);
  await t.throwsAsync(p.send({ topic: 'votes', messages: keys.map((key) => ({ key, value: 'v' })) }), {
    message: "KafkaJS resolved a send without Kafka's acknowledgement of partition(s) 2 of votes",
  });
  t.false(made[0]?.connected, 'the producer is retired');
  await p.send(record);
  t.is(made.length, 2);
  t.is(p.resets, 1);
  await p.disconnect();
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

test('a retired producer is disconnected only after its other sends, in flight when it failed, settle', async (t) => {
  let release: () => void = () => undefined;
  const hold = {
    partition: 0,
    until: new Promise<void>((r) => {
      release = r;
    }),
  };
  const { kafka, made, requests } = fakeKafka(new Set(), 2, new Set(), hold);
  const p = await createResettingProducer(kafka, { idempotent: true }, createLogger('test', 'silent'));
  // Two sends on the same producer at once (a vote batch and a poll event): partition 0's is held, partition 2's fails.
  const held = p.send({ topic: 'votes', messages: [{ key: 'a', value: 'v', partition: 0 }] });
  const failed = p.send({ topic: 'votes', messages: [{ key: 'b', value: 'v', partition: 2 }] });
  await t.throwsAsync(failed, { message: 'NOT_LEADER' });
  while (requests.length < 2) await new Promise((r) => setTimeout(r, 1));
  await new Promise((r) => setTimeout(r, 10));
  t.true(made[0]?.connected, 'still connected while a send of it is in flight');
  release();
  await held;
  t.false(made[0]?.connected, 'disconnected once nothing of it is in flight');
  await p.disconnect();
});
