import type { Logger } from '@votestream/runtime';
import {
  type Kafka,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type ProducerConfig,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';

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
  // The partitioner is passed explicitly (KafkaJS warns when it is left out): the one `send` below computes too.
  const producerConfig: ProducerConfig = { ...config, createPartitioner: Partitioners.DefaultPartitioner };
  let current = kafka.producer(producerConfig);
  await current.connect();
  let replacing: Promise<void> | undefined;
  let resets = 0;
  let closed = false;
  const replace = (failed: Producer) => {
    if (replacing || failed !== current || closed) return;
    replacing = (async () => {
      const next = kafka.producer(producerConfig);
      // Bounded by the client's retry settings; if Kafka is unreachable the next send fails and tries again.
      try {
        await next.connect();
      } catch (err) {
        await next.disconnect().catch(() => undefined); // no sockets or timers left behind by the failed attempt
        throw err;
      }
      if (closed) {
        await next.disconnect().catch(() => undefined);
        return;
      }
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
  // One produce request per partition (see the comment on `send`): the partition of each keyed message is
  // chosen here with KafkaJS's own default partitioner (murmur2 of the key, as the Java client), so nothing moves.
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionCounts = new Map<string, PartitionMetadata[]>();
  const admin = kafka.admin();
  const partitionsOf = async (topic: string): Promise<PartitionMetadata[]> => {
    let parts = partitionCounts.get(topic);
    if (!parts) {
      await admin.connect();
      parts = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions ?? [];
      if (parts.length === 0) throw new Error(`topic ${topic} has no partitions`);
      partitionCounts.set(topic, parts);
    }
    return parts;
  };
  const traceAcks = logger.isLevelEnabled('debug');
  const sendOnce = async (record: ProducerRecord): Promise<RecordMetadata[]> => {
    if (replacing) await replacing;
    const p = current;
    try {
      const acked = await p.send(record);
      // Where Kafka says each batch landed (LOG_LEVEL=debug): lets a fault run match a vote to its acknowledgement.
      if (traceAcks) {
        const keys = record.messages.map((m) => String(m.key));
        logger.debug({ topic: record.topic, acked, keys, resets }, 'produce acknowledged');
      }
      return acked;
    } catch (err) {
      replace(p);
      throw err;
    }
  };
  return {
    get resets() {
      return resets;
    },
    /**
     * KafkaJS 2.2.4 can acknowledge a send whose messages it never wrote: when a send spans several brokers and
     * one of them fails, the retry re-reads the leaders but sends only to brokers that have not answered yet,
     * so messages of a partition whose new leader already answered in the first attempt are dropped while the
     * send resolves (producer/sendMessages.js, `brokersWithoutResponse`). Found on the 3-node cluster: votes
     * answered 202 that are not in the topic. So a batch goes out as one send per partition (one leader each);
     * all must succeed for the batch to be acknowledged. A partition that did land while another failed is
     * answered 503 and resent by the voter: a duplicate the stream's dedupe drops.
     */
    async send(record: ProducerRecord): Promise<RecordMetadata[]> {
      if (
        record.messages.length <= 1 ||
        record.messages.every((m) => m.partition !== undefined && m.partition === record.messages[0]?.partition)
      )
        return sendOnce(record);
      const partitionMetadata = await partitionsOf(record.topic);
      const groups = new Map<number, Message[]>();
      for (const message of record.messages) {
        const partition = partitioner({ topic: record.topic, partitionMetadata, message });
        const group = groups.get(partition) ?? [];
        group.push({ ...message, partition });
        groups.set(partition, group);
      }
      const results = await Promise.allSettled(
        [...groups.values()].map((messages) => sendOnce({ ...record, messages })),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    },
    async disconnect() {
      closed = true;
      if (replacing) await replacing;
      await Promise.allSettled([current.disconnect(), admin.disconnect()]);
    },
  };
}
