import test from 'ava';
import { Kafka, logLevel } from 'kafkajs';
import { eventually, stack, uniqueId } from '../support/stack.ts';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const kafka = new Kafka({ clientId: 'stack-test', brokers: stack.kafkaBrokers, logLevel: logLevel.NOTHING });

test('a committed Kafka transaction is seen by a read_committed consumer and an aborted one is not', async (t) => {
  const topic = uniqueId('stack-tx-');
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });

  const producer = kafka.producer({ transactionalId: `${topic}-producer`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const committed = await producer.transaction();
  await committed.send({
    topic,
    acks: -1,
    messages: [
      { key: 'k', value: 'committed-1' },
      { key: 'k', value: 'committed-2' },
    ],
  });
  await committed.commit();
  const aborted = await producer.transaction();
  await aborted.send({ topic, acks: -1, messages: [{ key: 'k', value: 'aborted' }] });
  await aborted.abort();
  // A marker after the abort, so the consumer has read past the aborted records when it sees it.
  const last = await producer.transaction();
  await last.send({ topic, acks: -1, messages: [{ key: 'k', value: 'committed-3' }] });
  await last.commit();

  const consumer = kafka.consumer({ groupId: `${topic}-reader`, readUncommitted: false });
  await consumer.connect();
  t.teardown(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: string[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
  await eventually('the last committed record', async () => (seen.includes('committed-3') ? true : undefined), 60_000);

  t.deepEqual(seen, ['committed-1', 'committed-2', 'committed-3']);
});
