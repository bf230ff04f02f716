// Reads every committed VoteDecision of one poll from the `vote-decisions` topic (read_committed), the stream's
// authoritative record of which vote of each voter was counted. The receipts and totals are projections of it.
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger, topicNames } from '@votestream/runtime';
import { createAvroSerde } from '@votestream/schemas';

export interface Decision {
  voteId: string;
  voterId: string;
  optionId: string;
  counted: boolean;
}

export async function readDecisions(o: {
  brokers: string[];
  prefix: string;
  pollId: string;
  registryUrl: string;
  timeoutMs: number;
}): Promise<Decision[]> {
  const topic = topicNames(o.prefix).voteDecisions;
  const serde = await createAvroSerde({ registryUrl: o.registryUrl, records: ['VoteDecision'], autoRegister: false });
  const decode = serde.decoder('VoteDecision');
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
  // Keyed by partition and offset: a batch KafkaJS hands out twice is read once; two decisions for one vote are two.
  const out = new Map<string, Decision>();
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
          const d = await decode(m.value);
          if (d.vote.pollId !== o.pollId) continue;
          out.set(`${batch.partition}:${m.offset}`, {
            voteId: d.vote.voteId,
            voterId: d.vote.voterId,
            optionId: d.vote.optionId,
            counted: d.outcome === 'COUNTED',
          });
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
