import { eventually, stack, uniqueId } from '@votestream/devstack';
import test from 'ava';
import { Kafka, logLevel } from 'kafkajs';

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

test("sendOffsets commits a consumer group's offset in the transaction: kept on commit, dropped on abort", async (t) => {
  const input = uniqueId('stack-in-');
  const output = uniqueId('stack-out-');
  const groupId = `${input}-group`;
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({
    topics: [
      { topic: input, numPartitions: 1, replicationFactor: 1 },
      { topic: output, numPartitions: 1, replicationFactor: 1 },
    ],
    waitForLeaders: true,
  });
  const producer = kafka.producer({ transactionalId: `${input}-tx`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const groupOffset = async () =>
    (await admin.fetchOffsets({ groupId, topics: [input] }))[0]?.partitions.find((p) => p.partition === 0)?.offset;
  const offsets = (offset: string) => ({
    consumerGroupId: groupId,
    topics: [{ topic: input, partitions: [{ partition: 0, offset }] }],
  });

  // As a stream task does: outputs and the input position in one transaction.
  const committed = await producer.transaction();
  await committed.send({ topic: output, acks: -1, messages: [{ value: 'out-1' }] });
  await committed.sendOffsets(offsets('2'));
  await committed.commit();
  t.is(await groupOffset(), '2');

  const aborted = await producer.transaction();
  await aborted.send({ topic: output, acks: -1, messages: [{ value: 'out-2' }] });
  await aborted.sendOffsets(offsets('5'));
  await aborted.abort();
  t.is(await groupOffset(), '2', 'the aborted transaction did not move the offset');

  const consumer = kafka.consumer({ groupId: `${output}-reader`, readUncommitted: false });
  await consumer.connect();
  t.teardown(() => consumer.disconnect());
  await consumer.subscribe({ topic: output, fromBeginning: true });
  const seen: string[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
  const last = await producer.transaction();
  await last.send({ topic: output, acks: -1, messages: [{ value: 'out-3' }] });
  await last.commit();
  await eventually('the last committed record', async () => (seen.includes('out-3') ? true : undefined), 60_000);
  t.deepEqual(seen, ['out-1', 'out-3']);
});
