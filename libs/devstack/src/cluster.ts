import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createKafka, createLogger } from '@votestream/runtime';
import { repoRoot } from './process.ts';

const run = promisify(execFile);

/**
 * The local 3-node KRaft cluster of `compose/native/stack cluster` (RF 3, min.insync.replicas 2, no unclean
 * leader election, as on MSK). Node n (1..3) serves Kafka on 127.0.0.1:(19092 + 100*(n-1)).
 */
export const clusterNodes = [1, 2, 3] as const;
export type ClusterNode = (typeof clusterNodes)[number];
export const clusterBrokers = clusterNodes.map((n) => `127.0.0.1:${19092 + 100 * (n - 1)}`);
export const clusterReplicationFactor = 3;

/** Runs `compose/native/stack cluster <args>`; rejects with its output when it fails. */
export async function stackCluster(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [join(repoRoot, 'compose/native/stack'), 'cluster', ...args], {
    cwd: repoRoot,
    timeout: 300_000,
    maxBuffer: 1 << 20,
  });
  return stdout;
}

/** True when all three nodes are up (`stack cluster status` exits 0). */
export async function clusterHealthy(): Promise<boolean> {
  return stackCluster('status').then(
    () => true,
    () => false,
  );
}

type Admin = ReturnType<ReturnType<typeof createKafka>['admin']>;

/** A KafkaJS admin client on the cluster, connected. */
export async function clusterAdmin(): Promise<Admin> {
  const admin = createKafka({
    clientId: 'devstack-cluster',
    brokers: clusterBrokers,
    logger: createLogger('devstack', 'error'),
    retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 10 },
  }).admin();
  await admin.connect();
  return admin;
}

/** The node that leads `topic`'s `partition` now. */
export async function leaderOf(admin: Admin, topic: string, partition: number): Promise<ClusterNode> {
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const leader = meta.topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
  if (leader === undefined || !(clusterNodes as readonly number[]).includes(leader))
    throw new Error(`${topic}[${partition}] has no leader among the cluster's nodes (got ${leader})`);
  return leader as ClusterNode;
}

/** Java's String.hashCode, which Kafka uses to place a transactional id on a partition of __transaction_state. */
function javaHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/**
 * The transaction coordinator of `transactionalId`: the leader of partition
 * abs(hashCode(transactionalId)) % partitions of __transaction_state (Kafka's TransactionStateManager).
 */
export async function transactionCoordinatorOf(admin: Admin, transactionalId: string): Promise<ClusterNode> {
  const meta = await admin.fetchTopicMetadata({ topics: ['__transaction_state'] });
  const partitions = meta.topics[0]?.partitions.length ?? 0;
  if (partitions === 0) throw new Error('__transaction_state does not exist yet (no transaction has started)');
  return leaderOf(admin, '__transaction_state', (javaHashCode(transactionalId) & 0x7fffffff) % partitions);
}

/** Waits until every partition of `topics` has a leader and a full in-sync replica set (all 3 nodes). */
export async function waitFullyReplicated(admin: Admin, topics: string[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const meta = await admin.fetchTopicMetadata({ topics }).catch(() => undefined);
    const ok =
      meta?.topics.every((t) =>
        t.partitions.every((p) => p.leader >= 0 && p.isr.length === clusterReplicationFactor),
      ) ?? false;
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`topics ${topics.join(', ')} not fully replicated within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
