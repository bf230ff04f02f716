// Reads one poll's committed records (read_committed) from the `vote-decisions` topic, the stream's authoritative
// record of which vote of each voter was counted (the receipts and totals are projections of it), and from the
// `votes` topic (what ingest appended), so that an audit can show where a vote it misses ended.
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger, topicNames } from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';

export interface Decision {
  voteId: string;
  voterId: string;
  optionId: string;
  counted: boolean;
  /** Null when counted; e.g. DUPLICATE, POLL_CLOSED. */
  reason: string | null;
  /** The vote's event time (ingest's receivedAt) and when the stream decided, epoch ms. */
  receivedAt: number;
  decidedAt: number;
  /** Where the decision is in vote-decisions. */
  at: string;
}

/** A vote as it is in the `votes` topic, with where. */
export interface LoggedVote {
  voteId: string;
  voterId: string;
  optionId: string;
  idempotencyKey: string;
  receivedAt: number;
  /** `partition:offset`, and the record's timestamp (epoch ms). */
  at: string;
  timestamp: number;
}

interface ReadOptions {
  brokers: string[];
  prefix: string;
  pollId: string;
  registryUrl: string;
  timeoutMs: number;
}

export async function readDecisions(o: ReadOptions): Promise<Decision[]> {
  return readPollRecords(o, topicNames(o.prefix).voteDecisions, 'VoteDecision', (d, at) =>
    d.vote.pollId !== o.pollId
      ? undefined
      : {
          voteId: d.vote.voteId,
          voterId: d.vote.voterId,
          optionId: d.vote.optionId,
          counted: d.outcome === 'COUNTED',
          reason: d.reason,
          receivedAt: Number(d.vote.receivedAt),
          decidedAt: Number(d.decidedAt),
          at,
        },
  );
}

/** An analytics record of the poll as it is in `analytics-votes`: its key and what it says. */
export interface AnalyticsRecord {
  key: string;
  optionId: string;
  counted: boolean;
  reason: string | null;
}

/** Every committed record of the poll in `analytics-votes` (the analytics stage's output). */
export async function readAnalytics(o: ReadOptions): Promise<AnalyticsRecord[]> {
  return readPollRecords(o, topicNames(o.prefix).analyticsVotes, 'VoteAnalytics', (a, _at, _ts, key) =>
    a.pollId !== o.pollId ? undefined : { key, optionId: a.optionId, counted: a.counted, reason: a.reason },
  );
}

/** Every vote of the poll in the `votes` topic (committed or not: ingest's producer is not transactional). */
export async function readVotes(o: ReadOptions): Promise<LoggedVote[]> {
  return readPollRecords(o, topicNames(o.prefix).votes, 'VoteCast', (v: VoteCast, at, timestamp) =>
    v.pollId !== o.pollId
      ? undefined
      : {
          voteId: v.voteId,
          voterId: v.voterId,
          optionId: v.optionId,
          idempotencyKey: v.idempotencyKey,
          receivedAt: Number(v.receivedAt),
          at,
          timestamp,
        },
  );
}

async function readPollRecords<R extends 'VoteDecision' | 'VoteCast' | 'VoteAnalytics', T>(
  o: ReadOptions,
  topic: string,
  record: R,
  // biome-ignore lint/suspicious/noExplicitAny: the decoded record's type follows `record`
  pick: (value: any, at: string, timestamp: number, key: string) => T | undefined,
): Promise<T[]> {
  const serde = await createAvroSerde({ registryUrl: o.registryUrl, records: [record], autoRegister: false });
  const decode = serde.decoder(record);
  const kafka = createKafka({
    clientId: 'chaos-audit',
    brokers: o.brokers,
    logger: createLogger('chaos-audit', 'error'),
  });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic))
      if (BigInt(p.high) > BigInt(p.low)) ends.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  // Keyed by partition and offset: a batch KafkaJS hands out twice is read once; two records of one vote are two.
  const out = new Map<string, T>();
  if (ends.size === 0) return [];
  const consumer = kafka.consumer({
    groupId: `chaos-audit-${randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  const pending = new Set(ends.keys());
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const done = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`reading ${topic} timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
      // After every batch, also one of transaction markers only (lastOffset counts those).
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const end = ends.get(payload.partition);
        if (end !== undefined && BigInt(payload.lastOffset) >= end - 1n) pending.delete(payload.partition);
        if (pending.size === 0) resolve();
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const end = ends.get(batch.partition) ?? 0n;
        for (const m of batch.messages) {
          if (BigInt(m.offset) >= end || !m.value) continue;
          const at = `${batch.partition}:${m.offset}`;
          const picked = pick(await decode(m.value), at, Number(m.timestamp), m.key?.toString() ?? '');
          if (picked !== undefined) out.set(at, picked);
        }
      },
    });
    await done;
    return [...out.values()];
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
  }
}
