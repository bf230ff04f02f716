import { type ISocketFactory, Kafka, type KafkaConfig, type LogEntry, logLevel } from 'kafkajs';
import type { Logger } from './logger.ts';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** A KafkaJS client whose logs go through the service's pino logger. */
export function createKafka(opts: {
  clientId: string;
  brokers: string[];
  logger: Logger;
  /** KafkaJS logs below this level are dropped (its INFO is chatty). */
  minLevel?: logLevel;
  connectionTimeout?: number;
  requestTimeout?: number;
  retry?: KafkaConfig['retry'];
  /** Opens broker connections; tests use it to route every connection through a TCP proxy they control. */
  socketFactory?: ISocketFactory;
}): Kafka {
  const log = opts.logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: opts.connectionTimeout ?? 3000,
    requestTimeout: opts.requestTimeout ?? 30000,
    retry: opts.retry ?? { initialRetryTime: 100, maxRetryTime: 2000, retries: 8 },
    logLevel: opts.minLevel ?? logLevel.WARN,
    ...(opts.socketFactory ? { socketFactory: opts.socketFactory } : {}),
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        log[levels[level] ?? 'info'](rest, message);
      },
  });
}
