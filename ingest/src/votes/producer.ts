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
  // Each keyed message's partition is chosen here with KafkaJS's own default partitioner (murmur2 of the key, as the
  // Java client), so nothing moves, and so the partitions a send must be acknowledged for are known (see `send`).
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
  /** One KafkaJS send; with `partitions`, it fails unless Kafka acknowledged every one of them (see `send`). */
  const sendOnce = async (record: ProducerRecord, partitions?: Set<number>): Promise<RecordMetadata[]> => {
    const p = await producerForSend();
    inFlight.set(p, (inFlight.get(p) ?? 0) + 1);
    try {
      const acked = await p.send(record);
      if (partitions !== undefined) {
        const missing = new Set(partitions);
        for (const m of acked) if (m.topicName === record.topic && m.errorCode === 0) missing.delete(m.partition);
        if (missing.size > 0) {
          throw new Error(
            `KafkaJS resolved a send without Kafka's acknowledgement of partition(s) ${[...missing].join(', ')} of ${record.topic}`,
          );
        }
      }
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
     * answered 202 that are not in the topic. Such a send resolves without that partition in its result (the
     * result is the brokers' produce responses, and a partition is in one only if that broker appended all of the
     * send's messages of it), so a batch goes out as one send, its messages' partitions set here, and it is
     * acknowledged only if the result holds every one of those partitions without error; otherwise it fails (503,
     * the voters resend; a partition that did land is a duplicate the stream's dedupe drops) and the producer is
     * retired like after any failed send. One send per batch, not one per partition: the produce requests per batch
     * are one per leader broker, not one per partition (each costs the client about as much as a whole small batch).
     */
    async send(record: ProducerRecord): Promise<RecordMetadata[]> {
      if (
        record.messages.length <= 1 ||
        record.messages.every((m) => m.partition !== undefined && m.partition === record.messages[0]?.partition)
      )
        return sendOnce(record);
      const partitionMetadata = await partitionsOf(record.topic);
      const partitions = new Set<number>();
      const messages = new Array<Message>(record.messages.length);
      for (let i = 0; i < messages.length; i++) {
        const message = record.messages[i] as Message;
        const partition = partitioner({ topic: record.topic, partitionMetadata, message });
        partitions.add(partition);
        messages[i] = { ...message, partition };
      }
      return sendOnce({ ...record, messages }, partitions);
    },
    async disconnect() {
      closed = true;
      await replacing?.catch(() => undefined);
      const all = [...retired, ...(current ? [current] : [])];
      await Promise.allSettled([...all.map((p) => p.disconnect()), admin.disconnect()]);
    },
  };
}
