import type { Receipt } from '@votestream/read-models';
import { voteKey } from '@votestream/runtime';
import { type Admin, Partitioners } from 'kafkajs';

/**
 * Resolves a stale vote guard (its process died or gave up between admission and answer, and its lease expired,
 * so it can no longer append) from what the stream decided, with a read barrier instead of a timer:
 *
 *   1. E1 = end offset of the voter's `votes` partition, read now. Whatever the stale attempt appended is below E1.
 *   2. Wait until the dedupe stage's committed position on that partition reaches E1: every vote below it has a
 *      committed VoteDecision (outputs and offsets commit in one transaction).
 *   3. E2 = end offset of the voter's `vote-decisions` partition; wait until the receipts projector's committed
 *      position reaches E2: every decision below it is in the receipts ledger.
 *   4. Read the voter's receipts: a counted vote is the answer; none means the stale attempt never landed (or was
 *      rejected), so the voter may vote.
 *
 * Until both positions are reached (stream or projections behind or down) the answer is `undecided` (503).
 */
export type Resolution = { kind: 'undecided' } | { kind: 'decided'; counted: Receipt | null };

export interface ResolutionOptions {
  admin: Admin;
  topics: { votes: string; voteDecisions: string };
  dedupeGroupId: string;
  receiptsGroupId: string;
  readReceipts(pollId: string, voterId: string): Promise<Receipt[]>;
  /** How long one request waits for the barrier before answering 503. */
  waitMs: number;
  /** Resolutions in progress in this process at once; more get `undecided` at once (a bound on admin traffic). */
  inProgressMax: number;
}

const pollMs = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createResolver(o: ResolutionOptions) {
  const partitioner = Partitioners.DefaultPartitioner();
  const inProgress = new Map<string, Promise<Resolution>>();

  /** The producer's partition for `key` (KafkaJS's default partitioner, murmur2 like Java's). */
  async function partitionOf(topic: string, key: string): Promise<{ partition: number; end: bigint }> {
    const offsets = await o.admin.fetchTopicOffsets(topic);
    const partitionMetadata = offsets.map((x) => ({
      partitionId: x.partition,
      leader: 0,
      replicas: [],
      isr: [],
      offlineReplicas: [],
      partitionErrorCode: 0,
    }));
    const partition = partitioner({ topic, partitionMetadata, message: { key, value: null } });
    const at = offsets.find((x) => x.partition === partition);
    if (at === undefined) throw new Error(`${topic} has no partition ${partition}`);
    return { partition, end: BigInt(at.high) };
  }

  async function committedReaches(groupId: string, topic: string, partition: number, end: bigint, by: number) {
    for (;;) {
      const [t] = await o.admin.fetchOffsets({ groupId, topics: [topic] });
      const p = t?.partitions.find((x) => x.partition === partition);
      const committed = p === undefined || p.offset === '-1' ? 0n : BigInt(p.offset);
      if (committed >= end) return true;
      if (Date.now() + pollMs > by) return false;
      await sleep(pollMs);
    }
  }

  async function run(pollId: string, voterId: string): Promise<Resolution> {
    const by = Date.now() + o.waitMs;
    const key = voteKey(pollId, voterId);
    const votes = await partitionOf(o.topics.votes, key);
    if (!(await committedReaches(o.dedupeGroupId, o.topics.votes, votes.partition, votes.end, by))) {
      return { kind: 'undecided' };
    }
    const decisions = await partitionOf(o.topics.voteDecisions, key);
    if (!(await committedReaches(o.receiptsGroupId, o.topics.voteDecisions, decisions.partition, decisions.end, by))) {
      return { kind: 'undecided' };
    }
    const receipts = await o.readReceipts(pollId, voterId);
    return { kind: 'decided', counted: receipts.find((r) => r.status === 'counted') ?? null };
  }

  return {
    /** Concurrent requests for the same voter share one resolution. */
    resolve(pollId: string, voterId: string): Promise<Resolution> {
      const key = voteKey(pollId, voterId);
      const running = inProgress.get(key);
      if (running) return running;
      if (inProgress.size >= o.inProgressMax) return Promise.resolve({ kind: 'undecided' });
      const p = run(pollId, voterId).finally(() => inProgress.delete(key));
      inProgress.set(key, p);
      return p;
    },
  };
}

export type Resolver = ReturnType<typeof createResolver>;
