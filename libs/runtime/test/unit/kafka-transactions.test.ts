// Unit tests of the Kafka client seam's selection (kafka-transactions.ts): which Node versions may load the
// @platformatic/kafka prototype, and the start-up errors when it cannot be used. No services: nothing connects.
import test from 'ava';
import { Kafka } from 'kafkajs';
import { ConfigError, loadTransactionalProducers, nodeSupportsPlatformatic } from '../../src/index.ts';

const kafka = new Kafka({ clientId: 'seam-unit', brokers: ['127.0.0.1:1'] });

test('the platformatic prototype needs Node >= 22.22 (its engines field)', (t) => {
  t.false(nodeSupportsPlatformatic('20.20.2'));
  t.false(nodeSupportsPlatformatic('22.21.9'));
  t.true(nodeSupportsPlatformatic('22.22.0'));
  t.true(nodeSupportsPlatformatic('24.6.0'));
});

test('kafkajs (the default) gives a producer factory without connecting', async (t) => {
  const producers = await loadTransactionalProducers('kafkajs', kafka, { clientId: 'x', brokers: ['127.0.0.1:1'] });
  t.is(typeof producers, 'function');
});

test('platformatic is refused with a ConfigError: on Node < 22.22, and with TLS or SASL', async (t) => {
  const err = await t.throwsAsync(
    loadTransactionalProducers('platformatic', kafka, {
      clientId: 'x',
      brokers: ['127.0.0.1:1'],
      security: { ssl: true },
    }),
    { instanceOf: ConfigError },
  );
  t.regex(
    err?.message ?? '',
    nodeSupportsPlatformatic()
      ? /^STREAM_KAFKA_CLIENT=platformatic is a prototype: plaintext brokers only/
      : /^STREAM_KAFKA_CLIENT=platformatic needs Node >= 22\.22 /,
  );
});
