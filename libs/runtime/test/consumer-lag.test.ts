// exportConsumerLag on the real local Kafka: the gauge follows a consumer's lag per partition down to 0, and a
// partition that moves to another member at a rebalance is reported by its new owner only.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { Consumer } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createKafka, createLogger, createMetricsRegistry, exportConsumerLag } from '../src/index.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const logger = createLogger('consumer-lag-test', 'silent');
const name = 'test_consumer_lag_records';

/** Partition -> lag from the registry's exposition of the gauge (labels topic, partition, stage). */
async function lagByPartition(registry: Registry): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const metric = await registry.getSingleMetric(name)?.get();
  for (const v of metric?.values ?? []) out.set(Number(v.labels.partition), v.value);
  return out;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the lag gauge falls to 0 per partition, and a moved partition is reported by its new owner only', async (t) => {
  t.timeout(3 * 60_000);
  const id = randomBytes(5).toString('hex');
  const topic = `lag-${id}`;
  const groupId = `lag-${id}`;
  const kafka = createKafka({ clientId: `lag-${id}`, brokers, security: { ssl: false }, logger });
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });
  await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }], waitForLeaders: true });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let p = 0; p < 4; p++) {
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 50 }, (_, i) => ({ partition: p, value: `v${i}` })),
    });
  }
  await producer.disconnect();

  const start = async (registry: Registry): Promise<Consumer> => {
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxBytesPerPartition: 200,
    });
    exportConsumerLag(consumer, registry, { name, help: 'test', labels: { stage: 'test' } });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        for (const m of batch.messages) resolveOffset(m.offset);
        await heartbeat();
      },
    });
    return consumer;
  };

  const first = createMetricsRegistry('first');
  const a = await start(first);
  t.teardown(() => a.disconnect());
  await until('all 4 partitions at lag 0 on the only member', async () => {
    const lag = await lagByPartition(first);
    return lag.size === 4 && [...lag.values()].every((v) => v === 0);
  });

  // A second member joins: the group rebalances, each keeps only what it is assigned, nothing is reported twice.
  const second = createMetricsRegistry('second');
  const b = await start(second);
  t.teardown(() => b.disconnect());
  await producer.connect();
  for (let p = 0; p < 4; p++) await producer.send({ topic, acks: -1, messages: [{ partition: p, value: 'after' }] });
  await producer.disconnect();
  await until('both members report their own partitions at lag 0, none twice', async () => {
    const [la, lb] = [await lagByPartition(first), await lagByPartition(second)];
    const all = [...la.keys(), ...lb.keys()].sort();
    return (
      la.size > 0 &&
      lb.size > 0 &&
      all.join(',') === '0,1,2,3' &&
      [...la.values(), ...lb.values()].every((v) => v === 0)
    );
  });
  const [la, lb] = [await lagByPartition(first), await lagByPartition(second)];
  t.is(la.size + lb.size, 4);
  t.deepEqual([...la.keys(), ...lb.keys()].sort(), [0, 1, 2, 3]);
});
