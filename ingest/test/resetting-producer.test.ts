// Unit test of the producer replacement logic (votes/producer.ts) with a fake KafkaJS client: pure logic, no
// broker. The broker behaviour it answers (OUT_OF_ORDER_SEQUENCE_NUMBER for ever after a failed request) is
// exercised for real by tests/system/cluster.test.ts on the 3-node cluster.
import { createLogger } from '@votestream/runtime';
import test from 'ava';
import type { Kafka, Producer, ProducerRecord } from 'kafkajs';
import { createResettingProducer } from '../src/votes/producer.ts';

function fakeKafka(failures: Set<number>) {
  const made: { id: number; sends: number; connected: boolean }[] = [];
  const kafka = {
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
        async send(_r: ProducerRecord) {
          state.sends++;
          if (failures.has(state.id)) throw new Error('The broker received an out of order sequence number');
          return [];
        },
      } as unknown as Producer;
    },
  } as unknown as Kafka;
  return { kafka, made };
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
