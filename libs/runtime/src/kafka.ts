import { createRequire } from 'node:module';
import { type ISocketFactory, Kafka, type KafkaConfig, type LogEntry, logLevel, type SASLOptions } from 'kafkajs';
import type { KafkaSecurity } from './config.ts';
import type { Logger } from './logger.ts';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export interface CreateKafkaOptions {
  clientId: string;
  brokers: string[];
  /** TLS and SASL (CommonConfig.kafkaSecurity); omitted = plaintext without authentication (the local stack). */
  security?: KafkaSecurity;
  logger: Logger;
  /** KafkaJS logs below this level are dropped (its INFO is chatty). */
  minLevel?: logLevel;
  connectionTimeout?: number;
  requestTimeout?: number;
  retry?: KafkaConfig['retry'];
  /** Opens broker connections; tests use it to route every connection through a TCP proxy they control. */
  socketFactory?: ISocketFactory;
}

/** A KafkaJS client whose logs go through the service's pino logger. */
export function createKafka(opts: CreateKafkaOptions): Kafka {
  assertReadCommittedFilter();
  return new Kafka(kafkaClientConfig(opts));
}

export interface FilterRecord {
  offset: string;
  key: Buffer | null;
  batchContext: { producerId: string; inTransaction: boolean };
}
/** KafkaJS's filterAbortedMessages.js: the records of a fetched partition a read_committed consumer may see. */
export type AbortedFilter = (batch: {
  messages: FilterRecord[];
  abortedTransactions: Array<{ producerId: string; firstOffset: string }>;
}) => FilterRecord[];
let readCommittedFilterChecked = false;

/**
 * Throws unless the installed KafkaJS drops the records of aborted transactions that interleave in a partition
 * when the broker lists them out of first-offset order (KafkaJS 2.2.4 does not: scripts/patch-kafkajs.mjs mends
 * it after every install). Checked once per process, on a made-up fetch: producer 1's transaction starts first
 * and is aborted after producer 2's; only producer 3's record and the ABORT markers may come through.
 */
export function assertReadCommittedFilter(): void {
  if (readCommittedFilterChecked) return;
  const filter = createRequire(import.meta.url)('kafkajs/src/consumer/filterAbortedMessages.js') as AbortedFilter;
  const kept = interleavedAbortsKept(filter);
  if (kept.join() !== '2,3,4')
    throw new Error(
      `KafkaJS's read_committed filter hands out records of aborted transactions (kept offsets ${kept.join()} of ` +
        'the self-check, expected 2,3,4): run `node scripts/patch-kafkajs.mjs` after installing dependencies',
    );
  readCommittedFilterChecked = true;
}

/**
 * The offsets a read_committed filter keeps of a made-up fetch: producer 1's transaction starts first (offset 0)
 * and is aborted after producer 2's (offset 1), producer 3's record (offset 2) is committed, then the two ABORT
 * markers (3, 4). Right: 2,3,4 (the markers are dropped later, as control records). KafkaJS 2.2.4: 0,2,3,4.
 */
export function interleavedAbortsKept(filter: AbortedFilter): string[] {
  const abortMarker = Buffer.from([0, 0, 0, 0]);
  const record = (offset: number, producerId: string, key: Buffer | null = null): FilterRecord => ({
    offset: String(offset),
    key,
    batchContext: { producerId, inTransaction: true },
  });
  return filter({
    messages: [
      record(0, '1'),
      record(1, '2'),
      record(2, '3'),
      record(3, '2', abortMarker),
      record(4, '1', abortMarker),
    ],
    abortedTransactions: [
      { producerId: '2', firstOffset: '1' },
      { producerId: '1', firstOffset: '0' },
    ],
  }).map((m) => m.offset);
}

/** The KafkaJS configuration createKafka uses (exported so tests can check what TLS/SASL settings become). */
export function kafkaClientConfig(opts: CreateKafkaOptions): KafkaConfig {
  const log = opts.logger.child({ component: 'kafkajs' });
  const security = opts.security ?? { ssl: false };
  const sasl = saslOptions(security, log);
  return {
    clientId: opts.clientId,
    brokers: opts.brokers,
    // rejectUnauthorized stays true: a broker certificate that does not verify is a refused connection.
    ...(security.ssl ? { ssl: security.caPem !== undefined ? { ca: [security.caPem] } : true } : {}),
    ...(sasl ? { sasl } : {}),
    connectionTimeout: opts.connectionTimeout ?? 3000,
    requestTimeout: opts.requestTimeout ?? 30000,
    retry: opts.retry ?? { initialRetryTime: 100, maxRetryTime: 2000, retries: 8 },
    logLevel: opts.minLevel ?? logLevel.WARN,
    ...(opts.socketFactory ? { socketFactory: opts.socketFactory } : {}),
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        // Bounded retries on idempotent producers are deliberate, so this warning (one per producer) says nothing
        // an operator can act on: a transactional send that fails aborts its transaction and the task retries
        // from its changelog; an ingest send that fails answers 503 and the stream's dedupe drops any duplicate.
        if (message.startsWith(boundedRetriesWarning)) return;
        log[levels[level] ?? 'info'](rest, message);
      },
  };
}

const boundedRetriesWarning = 'Limiting retries for the idempotent producer';

/**
 * Retries of the stream processors and projections: about 17 s in all (100 ms doubling to 2 s, 12 times), longer
 * than a broker's failure detection (broker.session.timeout.ms, 9 s) plus the leader election, so the loss of a
 * broker is retried through. With fewer, a consumer gives up (KafkaJSNumberOfRetriesExceeded), restarts and
 * rejoins, which rebalances its whole group and re-creates every task (seen on the 3-node cluster).
 */
export const brokerLossRetry = { initialRetryTime: 100, maxRetryTime: 2000, retries: 12 } as const;

/** Refresh an MSK IAM token this long before it expires (tokens live 15 minutes). */
const mskTokenRefreshMarginMs = 60_000;

function saslOptions(security: KafkaSecurity, log: Logger): SASLOptions | undefined {
  const sasl = security.sasl;
  if (sasl === undefined) return undefined;
  if (sasl.mechanism === 'scram-sha-512') {
    return { mechanism: 'scram-sha-512', username: sasl.username, password: sasl.password };
  }
  // AWS MSK IAM: SASL/OAUTHBEARER with a token that is a SigV4-presigned kafka-cluster:Connect request, signed
  // with the default credential chain (IRSA web identity in EKS). KafkaJS asks on every new connection's
  // authentication; one token serves all connections until shortly before it expires.
  let cached: { value: string; expiresAt: number } | undefined;
  let pending: Promise<{ value: string }> | undefined;
  const region = sasl.region;
  return {
    mechanism: 'oauthbearer',
    oauthBearerProvider: async () => {
      if (cached && cached.expiresAt - Date.now() > mskTokenRefreshMarginMs) return { value: cached.value };
      pending ??= (async () => {
        try {
          // Loaded only when used: the AWS SDK is large and the local stack never needs it.
          const { generateAuthToken } = await import('aws-msk-iam-sasl-signer-js');
          const { token, expiryTime } = await generateAuthToken({ region });
          cached = { value: token, expiresAt: expiryTime };
          log.debug({ expiresAt: new Date(expiryTime).toISOString() }, 'new MSK IAM token');
          return { value: token };
        } finally {
          pending = undefined;
        }
      })();
      return pending;
    },
  };
}
