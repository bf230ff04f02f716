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
 * An idempotent producer that is never used again after a failed send: the next send goes through a fresh one (new
 * producer id, sequence numbers from 0). KafkaJS 2.2.4 keeps an idempotent producer's sequence numbers in the
 * client and moves them back when a request fails, whether or not the broker appended it:
 * - a request that failed without landing but advanced the numbers leaves every later request refused with
 *   OUT_OF_ORDER_SEQUENCE_NUMBER, for ever (seen on the 3-node cluster: one broker loss left ingest answering 503 to
 *   every vote);
 * - a request that landed and still failed (a timeout, a connection lost after the append) gives its sequence
 *   number to the next request, with other votes in it; the broker takes that one for a retry of the first,
 *   acknowledges it and appends nothing. A vote answered 202 is then not in Kafka (seen on the 3-node cluster: a
 *   voter told 202 whose vote is not in the votes topic, and the failed batch's vote appended twice).
 * So a producer whose send failed is retired at once, and while no fresh producer could be connected every send
 * fails (503). A failed send was answered 503, so nothing acknowledged depends on the old producer; a copy of it that
 * did land is a duplicate the stream's dedupe drops. The retired producer is disconnected once its other sends (of
 * other partitions, in flight when it failed) have settled.
 */
export async function createResettingProducer(
  kafka: Kafka,
  config: ProducerConfig,
  logger: Logger,
): Promise<SendOnlyProducer & { readonly resets: number }> {
  // The partitioner is passed explicitly (KafkaJS warns when it is left out): the one `send` below computes too.
  const producerConfig: ProducerConfig = { ...config, createPartitioner: Partitioners.DefaultPartitioner };
  const first = kafka.producer(producerConfig);
  await first.connect();
  /** The producer new sends use; undefined after a failed send until a replacement has connected. */
  let current: Producer | undefined = first;
  let replacing: Promise<Producer> | undefined;
  let resets = 0;
  let closed = false;
  /** Sends in flight per producer, so that a retired one is disconnected only when they have settled. */
  const inFlight = new Map<Producer, number>();
  const retired = new Set<Producer>();
  const disconnectIfIdle = (p: Producer) => {
    if (retired.has(p) && !inFlight.get(p)) {
      retired.delete(p);
      inFlight.delete(p);
      void p.disconnect().catch(() => undefined);
    }
  };
  const retire = (failed: Producer) => {
    if (current !== failed) return; // already retired by another failed send
    current = undefined;
    retired.add(failed);
    disconnectIfIdle(failed);
  };
  const producerForSend = (): Promise<Producer> => {
    if (closed) return Promise.reject(new Error('the producer is closed'));
    if (current) return Promise.resolve(current);
    replacing ??= (async () => {
      const next = kafka.producer(producerConfig);
      // Bounded by the client's retry settings; if Kafka is unreachable this send fails and the next one tries again.
      try {
        await next.connect();
      } catch (err) {
        await next.disconnect().catch(() => undefined); // no sockets or timers left behind by the failed attempt
        logger.warn({ err }, 'producer replacement failed; sends fail until one connects');
        throw err;
      }
      if (closed) {
        await next.disconnect().catch(() => undefined);
        throw new Error('the producer is closed');
      }
      current = next;
      resets++;
      logger.warn({ resets }, 'producer replaced after a failed send (fresh producer id and sequence numbers)');
      return next;
    })().finally(() => {
      replacing = undefined;
    });
    return replacing;
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
    const p = await producerForSend();
    inFlight.set(p, (inFlight.get(p) ?? 0) + 1);
    try {
      const acked = await p.send(record);
      // Where Kafka says each batch landed (LOG_LEVEL=debug): lets a fault run match a vote to its acknowledgement.
      if (traceAcks) {
        const keys = record.messages.map((m) => String(m.key));
        logger.debug({ topic: record.topic, acked, keys, resets }, 'produce acknowledged');
      }
      return acked;
    } catch (err) {
      retire(p);
      throw err;
    } finally {
      inFlight.set(p, (inFlight.get(p) ?? 1) - 1);
      disconnectIfIdle(p);
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
      await replacing?.catch(() => undefined);
      const all = [...retired, ...(current ? [current] : [])];
      await Promise.allSettled([...all.map((p) => p.disconnect()), admin.disconnect()]);
    },
  };
}
