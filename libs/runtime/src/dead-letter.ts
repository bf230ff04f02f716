import { type IHeaders, type Kafka, type KafkaMessage, type Message, Partitioners, type Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { sharedMetric } from './metrics.ts';

/**
 * Dead letters: a record a consumer cannot decode (garbage bytes, an unknown or unreadable schema id, a tombstone
 * where none may be) is copied, bytes unchanged, to the pipeline's `dead-letters` topic with where it came from
 * and why in headers, and the consumer moves on. It never crash-loops on it. Only poison records go there: an
 * outage (schema registry unreachable) or a broken invariant still fails the batch, which is retried.
 *
 * Stream tasks write the dead letter inside the task's transaction (exactly once, with the offsets that skip the
 * record); projections consumers write it before committing the offset (at least once).
 */
export const deadLetterHeaders = {
  sourceTopic: 'dlq.source.topic',
  sourcePartition: 'dlq.source.partition',
  sourceOffset: 'dlq.source.offset',
  reason: 'dlq.reason',
  /** The decoder's message, at most deadLetterErrorCharsMax characters. */
  error: 'dlq.error',
  /** The consumer group (stage) that gave up on the record. */
  consumer: 'dlq.consumer',
} as const;

export const deadLetterErrorCharsMax = 1000;

export type DeadLetterReason = 'undecodable' | 'unknown_schema' | 'no_value';

/**
 * The reason a record is poison, or null if `err` is not about the record's bytes (then it is a fault: rethrow).
 * `null` as `err` means the record had no value.
 */
export function deadLetterReasonOf(err: unknown): DeadLetterReason | null {
  if (err === null) return 'no_value';
  // By name: @votestream/schemas' AvroDecodeError (this library sits below schemas).
  if (!(err instanceof Error) || err.name !== 'AvroDecodeError') return null;
  return /unknown schema id|cannot be read as|is not an Avro schema|is not a valid Avro schema/.test(err.message)
    ? 'unknown_schema'
    : 'undecodable';
}

export interface DeadLetterSource {
  topic: string;
  partition: number;
  message: KafkaMessage;
  /** Consumer group or stage name. */
  consumer: string;
}

/** The dead-letter copy of a record: same key and value bytes, source and reason in headers. */
export function deadLetterRecord(source: DeadLetterSource, reason: DeadLetterReason, err: unknown): Message {
  const detail = err === null ? 'no value' : err instanceof Error ? err.message : String(err);
  const headers: IHeaders = {
    [deadLetterHeaders.sourceTopic]: source.topic,
    [deadLetterHeaders.sourcePartition]: String(source.partition),
    [deadLetterHeaders.sourceOffset]: source.message.offset,
    [deadLetterHeaders.reason]: reason,
    [deadLetterHeaders.error]: detail.slice(0, deadLetterErrorCharsMax),
    [deadLetterHeaders.consumer]: source.consumer,
  };
  return { key: source.message.key ?? null, value: source.message.value ?? null, headers };
}

/** `<service>_dead_letter_total{topic, reason}`: records sent to the dead-letter topic, by source topic. */
export function deadLetterCounter(registry: Registry, service: string): Counter<'topic' | 'reason'> {
  const name = `${service}_dead_letter_total`;
  return sharedMetric(
    registry,
    name,
    () =>
      new Counter({
        name,
        help: 'Records a consumer could not decode, copied to the dead-letter topic, by source topic and reason',
        labelNames: ['topic', 'reason'],
        registers: [registry],
      }),
  );
}

/**
 * For at-least-once consumers: decodes with `decode`, and on a poison record produces its dead letter
 * (acks = all, idempotent producer) and returns null, so the caller skips it and commits past it. Other errors
 * are rethrown.
 */
export function deadLetterDecoder<T>(o: {
  producer: Producer;
  deadLetterTopic: string;
  consumer: string;
  counter: Counter<'topic' | 'reason'>;
  decode: (buf: Buffer) => Promise<T>;
}): (topic: string, partition: number, message: KafkaMessage) => Promise<T | null> {
  return async (topic, partition, message) => {
    let failure: unknown = null;
    if (message.value !== null && message.value !== undefined) {
      try {
        return await o.decode(message.value);
      } catch (err) {
        failure = err;
      }
    }
    const reason = deadLetterReasonOf(failure);
    if (reason === null) throw failure;
    await o.producer.send({
      topic: o.deadLetterTopic,
      acks: -1,
      messages: [deadLetterRecord({ topic, partition, message, consumer: o.consumer }, reason, failure)],
    });
    o.counter.inc({ topic, reason });
    return null;
  };
}

/**
 * The producer of an at-least-once consumer's dead letters (rare): idempotent, one request in flight, no topic
 * auto-creation; `deadLetterDecoder` sends with acks = all. Connect it before use.
 */
export function createDeadLetterProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner, // explicit: KafkaJS warns when it is left out
  });
}
