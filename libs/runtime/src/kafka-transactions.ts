// The Kafka client seam of the stream runtime: one transactional producer per task (fence, then per commit:
// begin, one produce request per partition batch, the consumer group's offset, commit; abort on error). KafkaJS
// 2.2.4 is the default; @platformatic/kafka is a prototype selected by STREAM_KAFKA_CLIENT=platformatic, loaded
// only by dynamic import (it needs Node >= 22.22, the project also runs on Node 20). Consumers stay on KafkaJS.
import type { ICustomPartitioner, Kafka, Message } from 'kafkajs';
import type { KafkaSecurity } from './config.ts';
import { ConfigError } from './config.ts';

export const kafkaClients = ['kafkajs', 'platformatic'] as const;
export type KafkaClientName = (typeof kafkaClients)[number];

export interface TransactionalProducerOptions {
  /** Stable per input partition: a new owner initialising it fences the old one. */
  transactionalId: string;
  /** The broker aborts a transaction left open longer than this. */
  transactionTimeoutMs: number;
}

/** One open transaction. */
export interface KafkaTransaction {
  /** One produce request of `messages` to topic/partition (acks all); resolves whether the partition acknowledged. */
  send(topic: string, partition: number, messages: Message[]): Promise<boolean>;
  /** Adds the group's next offset of topic/partition to the transaction. */
  sendOffsets(groupId: string, topic: string, partition: number, nextOffset: bigint): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface TransactionalProducer {
  /** Connects and initialises the transactional id (bumps its epoch: the previous owner is fenced). */
  fence(): Promise<void>;
  begin(): Promise<KafkaTransaction>;
  disconnect(): Promise<void>;
}

export type TransactionalProducers = (opts: TransactionalProducerOptions) => TransactionalProducer;

/** Per produce request of a commit. */
const sendTimeoutMs = 30_000;

/** The default: KafkaJS 2.2.4 (idempotent, one request in flight, no auto-creation). */
export function kafkajsTransactionalProducers(
  kafka: Kafka,
  createPartitioner?: ICustomPartitioner,
): TransactionalProducers {
  return (opts) => {
    const producer = kafka.producer({
      transactionalId: opts.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: opts.transactionTimeoutMs,
      allowAutoTopicCreation: false,
      ...(createPartitioner ? { createPartitioner } : {}),
    });
    return {
      async fence() {
        await producer.connect();
        const fence = await producer.transaction();
        await fence.abort();
      },
      async begin() {
        const txn = await producer.transaction();
        return {
          async send(topic, partition, messages) {
            const acked = await txn.send({ topic, messages, acks: -1, timeout: sendTimeoutMs });
            return acked.some((r) => r.topicName === topic && r.partition === partition);
          },
          async sendOffsets(groupId, topic, partition, nextOffset) {
            await txn.sendOffsets({
              consumerGroupId: groupId,
              topics: [{ topic, partitions: [{ partition, offset: String(nextOffset) }] }],
            });
          },
          commit: () => txn.commit(),
          abort: () => txn.abort(),
        };
      },
      disconnect: () => producer.disconnect(),
    };
  };
}

/** What the platformatic prototype needs to open its own connections (the KafkaJS client hides them). */
export interface KafkaConnection {
  clientId: string;
  brokers: string[];
  security?: KafkaSecurity | undefined;
}

/** The lowest Node version @platformatic/kafka 2.x supports (its engines field). */
const platformaticNodeMin = [22, 22] as const;

export function nodeSupportsPlatformatic(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > platformaticNodeMin[0] || (major === platformaticNodeMin[0] && minor >= platformaticNodeMin[1]);
}

/**
 * The producers of `client`. `platformatic` is refused (ConfigError) on Node < 22.22 and with TLS or SASL (the
 * prototype speaks plaintext only); its module is imported only here, only when selected.
 */
export async function loadTransactionalProducers(
  client: KafkaClientName,
  kafka: Kafka,
  connection: KafkaConnection,
  createPartitioner?: ICustomPartitioner,
): Promise<TransactionalProducers> {
  if (client === 'kafkajs') return kafkajsTransactionalProducers(kafka, createPartitioner);
  if (!nodeSupportsPlatformatic())
    throw new ConfigError(
      `STREAM_KAFKA_CLIENT=platformatic needs Node >= ${platformaticNodeMin.join('.')} (@platformatic/kafka 2.x), this is Node ${process.versions.node}`,
    );
  if (connection.security?.ssl || connection.security?.sasl)
    throw new ConfigError('STREAM_KAFKA_CLIENT=platformatic is a prototype: plaintext brokers only (no TLS, no SASL)');
  const { platformaticTransactionalProducers } = await import('./kafka-transactions-platformatic.ts');
  return platformaticTransactionalProducers(connection);
}
