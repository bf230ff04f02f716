import type { Logger } from '@votestream/runtime';
import type { Kafka, Producer, ProducerConfig, ProducerRecord, RecordMetadata } from 'kafkajs';

/** What the vote path and the poll admin need of a producer. */
export type SendOnlyProducer = Pick<Producer, 'send' | 'disconnect'>;

/**
 * An idempotent producer that replaces itself (new producer id, sequence numbers from 0) after a failed send.
 * KafkaJS 2.2.4 advances an idempotent producer's sequence numbers for a request that then fails (a broker
 * killed or stopped mid-request); every later request is refused with OUT_OF_ORDER_SEQUENCE_NUMBER, for ever
 * (seen on the 3-node cluster: one broker loss left ingest answering 503 to every vote). A failed send was
 * answered 503, so nothing acknowledged depends on the old producer; a copy of it that did land is a duplicate
 * the stream's dedupe drops. Sends wait while a replacement connects.
 */
export async function createResettingProducer(
  kafka: Kafka,
  config: ProducerConfig,
  logger: Logger,
): Promise<SendOnlyProducer & { readonly resets: number }> {
  let current = kafka.producer(config);
  await current.connect();
  let replacing: Promise<void> | undefined;
  let resets = 0;
  let closed = false;
  const replace = (failed: Producer) => {
    if (replacing || failed !== current || closed) return;
    replacing = (async () => {
      const next = kafka.producer(config);
      // Bounded by the client's retry settings; if Kafka is unreachable the next send fails and tries again.
      await next.connect();
      current = next;
      resets++;
      logger.warn({ resets }, 'producer replaced after a failed send (fresh producer id and sequence numbers)');
      await failed.disconnect().catch(() => undefined);
    })()
      .catch((err: unknown) => logger.warn({ err }, 'producer replacement failed; the next failed send retries it'))
      .finally(() => {
        replacing = undefined;
      });
  };
  return {
    get resets() {
      return resets;
    },
    async send(record: ProducerRecord): Promise<RecordMetadata[]> {
      if (replacing) await replacing;
      const p = current;
      try {
        return await p.send(record);
      } catch (err) {
        replace(p);
        throw err;
      }
    },
    async disconnect() {
      closed = true;
      if (replacing) await replacing;
      await current.disconnect();
    },
  };
}
