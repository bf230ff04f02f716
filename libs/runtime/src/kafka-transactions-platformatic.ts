// The @platformatic/kafka prototype of the transactional producer seam (kafka-transactions.ts). Imported only by
// loadTransactionalProducers when STREAM_KAFKA_CLIENT=platformatic, on Node >= 22.22: never on Node 20.
import {
  Admin,
  FindCoordinatorKeyTypes,
  type MessageToProduce,
  type Message as PlatformaticMessage,
  ProduceAcks,
  Producer,
} from '@platformatic/kafka';
import type { Message } from 'kafkajs';
import type { KafkaConnection, KafkaTransaction, TransactionalProducers } from './kafka-transactions.ts';

type Transaction = Awaited<ReturnType<Producer['beginTransaction']>>;

/** Broker error names that mean "an owner with a newer epoch has this transactionalId" (as errors.ts knows them). */
const fencedIds = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

/** The runtime's words for a fence (KafkaJS's, which its logs and tests know), then the client's own message. */
const fencedWords: Record<string, string> = {
  INVALID_PRODUCER_EPOCH: 'Producer attempted an operation with an old epoch',
  PRODUCER_FENCED: 'There is a newer producer with the same transactionalId which fences the current one',
};

/** A fenced producer's error, with the `type` the stream runtime's recoveryOf reads (KafkaJS's field). */
class PlatformaticFencedError extends Error {
  override readonly name = 'PlatformaticFencedError';
  constructor(
    readonly type: string,
    cause: unknown,
  ) {
    const own = cause instanceof Error ? cause.message : String(cause);
    super(`${fencedWords[type] ?? 'Producer fenced'} (${type}; @platformatic/kafka: ${own})`, { cause });
  }
}

/** The fencing broker error inside `err` (platformatic nests them in `errors` and `cause`), if any. */
function fencedId(err: unknown, depth = 0): string | undefined {
  if (!(err instanceof Error) || depth > 4) return undefined;
  const e = err as Error & { apiId?: unknown; producerFenced?: unknown; errors?: unknown };
  if (typeof e.apiId === 'string' && fencedIds.has(e.apiId)) return e.apiId;
  if (e.producerFenced === true) return 'PRODUCER_FENCED';
  for (const inner of Array.isArray(e.errors) ? e.errors : []) {
    const id = fencedId(inner, depth + 1);
    if (id) return id;
  }
  return fencedId(e.cause, depth + 1);
}

async function translated<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const id = fencedId(err);
    throw id ? new PlatformaticFencedError(id, err) : err;
  }
}

const asBuffer = (v: Buffer | string | null | undefined): Buffer | undefined =>
  v === null || v === undefined ? undefined : typeof v === 'string' ? Buffer.from(v) : v;

function toPlatformatic(topic: string, partition: number, m: Message): MessageToProduce {
  const headers = new Map<Buffer, Buffer>();
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) {
      const b = asBuffer(one);
      if (b !== undefined) headers.set(Buffer.from(k), b);
    }
  }
  return {
    topic,
    partition,
    key: asBuffer(m.key),
    value: asBuffer(m.value),
    ...(headers.size > 0 ? { headers } : {}),
    ...(m.timestamp !== undefined ? { timestamp: BigInt(m.timestamp) } : {}),
  };
}

/**
 * Producers on @platformatic/kafka: idempotent (one request in flight, acks all), no auto-creation; its `timeout`
 * is both the request timeout and the transaction timeout it asks for in InitProducerId. The group coordinator
 * of the offsets (TxnOffsetCommit goes there) is looked up once per group by one shared admin client (open while
 * any producer is) and forgotten when a commit fails.
 */
export function platformaticTransactionalProducers(connection: KafkaConnection): TransactionalProducers {
  const base = { clientId: connection.clientId, bootstrapBrokers: connection.brokers };
  const retry = { retries: 12, retryDelay: 250 };
  let admin: Admin | undefined;
  let open = 0;
  const coordinators = new Map<string, Promise<number>>();
  const coordinatorOf = (groupId: string): Promise<number> => {
    let c = coordinators.get(groupId);
    if (c === undefined) {
      admin ??= new Admin({ ...base, ...retry });
      c = admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] }).then((found) => {
        const nodeId = found.find((f) => f.key === groupId)?.nodeId;
        if (nodeId === undefined) throw new Error(`no group coordinator found for ${groupId}`);
        return nodeId;
      });
      c.catch(() => coordinators.delete(groupId));
      coordinators.set(groupId, c);
    }
    return c;
  };

  return (opts) => {
    const producer = new Producer({
      ...base,
      ...retry,
      transactionalId: opts.transactionalId,
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
      timeout: opts.transactionTimeoutMs,
    });
    open += 1;
    let closed = false;
    const begin = async (): Promise<KafkaTransaction> => {
      const txn: Transaction = await translated(() => producer.beginTransaction());
      let groupAdded: string | undefined;
      // One send at a time per transaction: 2.12.1 deduplicates concurrent AddPartitionsToTxn calls by name, so a
      // send that starts while another one's partitions are being added is produced to a partition never added
      // (the broker answers TRANSACTION_ABORTABLE). KafkaJS sends the partitions in parallel.
      let sending: Promise<unknown> = Promise.resolve();
      return {
        send(topic: string, partition: number, messages: Message[]) {
          const sent = sending.then(() =>
            translated(() =>
              txn.send({ messages: messages.map((m) => toPlatformatic(topic, partition, m)), acks: ProduceAcks.ALL }),
            ),
          );
          sending = sent.catch(() => undefined);
          return sent.then((res) => (res.offsets ?? []).some((o) => o.topic === topic && o.partition === partition));
        },
        async sendOffsets(groupId: string, topic: string, partition: number, nextOffset: bigint) {
          const coordinatorId = await coordinatorOf(groupId);
          if (groupAdded !== groupId) {
            // AddOffsetsToTxn: addConsumer reads only the consumer's groupId (the consumers stay on KafkaJS).
            await translated(() => txn.addConsumer({ groupId } as Parameters<Transaction['addConsumer']>[0]));
            groupAdded = groupId;
          }
          // TxnOffsetCommit of offset + 1 = nextOffset, without a generation (-1, no member id: not KIP-447, the
          // transactional id per input partition fences instead, as with KafkaJS).
          const message = {
            topic,
            partition,
            offset: nextOffset - 1n,
            metadata: { consumer: { groupId, coordinatorId, generationId: -1, memberId: '' } },
          } as unknown as PlatformaticMessage;
          await translated(() => txn.addOffset(message)).catch((err: unknown) => {
            coordinators.delete(groupId);
            throw err;
          });
        },
        commit: () => translated(() => txn.commit()),
        async abort() {
          try {
            await translated(() => txn.abort());
          } finally {
            // A failed abort leaves the transaction open in the client: drop it so the next begin() can start
            // (the broker aborts it at the timeout or at the next fence).
            if (!txn.completed) await txn.cancel().catch(() => undefined);
          }
        },
      };
    };
    return {
      async fence() {
        // The first transaction initialises the transactional id (InitProducerId: the epoch bump fences the
        // previous owner and ends its open transaction); nothing was added to it, so it is dropped locally.
        // Producer id and epoch -1: "a new producer" (2.12.1 sends 0/0 by default, which the coordinator of an
        // existing transactional id answers with PRODUCER_FENCED, so no second owner could ever fence).
        const txn = await translated(() => producer.beginTransaction({ producerId: -1n, producerEpoch: -1 }));
        await txn.cancel();
      },
      begin,
      async disconnect() {
        if (closed) return;
        closed = true;
        await producer.close();
        open -= 1;
        if (open === 0 && admin !== undefined) {
          const a = admin;
          admin = undefined;
          coordinators.clear();
          await a.close();
        }
      },
    };
  };
}
