import {
  createKafka,
  createLogger,
  ensureTopics,
  pipelineTopicSpecs,
  readTopicToEnd,
  type Topics,
  topicNames,
} from '@votestream/runtime';
import { eventually, stack } from './stack.ts';

const silent = createLogger('devstack', 'silent');

type Kafka = ReturnType<typeof createKafka>;
type Admin = ReturnType<Kafka['admin']>;

/** A KafkaJS client on the stack's brokers (or `brokers`), logging nothing. */
export function stackKafka(clientId = 'devstack', brokers = stack.kafkaBrokers): Kafka {
  return createKafka({ clientId, brokers, logger: silent });
}

/** Runs `fn` with a connected admin client on the stack, disconnected afterwards. */
export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = stackKafka('devstack-admin').admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates the pipeline's topics under `prefix` (auto-creation is off), as `pipelineTopicSpecs` defines them, or
 * only the `only` ones (e.g. ingest's votes and polls); resolves once every partition has a leader. Returns
 * their deletion, for the test's teardown.
 */
export async function createTopics(
  prefix: string,
  opts: { votePartitions?: number; tallyPartitions?: number; only?: (keyof Topics)[] } = {},
): Promise<() => Promise<void>> {
  const names = topicNames(prefix);
  const wanted = opts.only ? new Set(opts.only.map((k) => names[k])) : undefined;
  const specs = pipelineTopicSpecs(prefix, opts).filter((s) => !wanted || wanted.has(s.topic));
  await withAdmin((admin) => ensureTopics(admin, specs));
  return () => withAdmin((admin) => admin.deleteTopics({ topics: specs.map((s) => s.topic) })).catch(() => undefined);
}

/**
 * Every record of `topic`, decoded, read_committed from the beginning to the end offsets it has when this is
 * called: a check that "nothing else was produced" sees everything written before it. Fails if the end is not
 * reached within `timeoutMs` (never returns partial data).
 */
export async function readTopic<T>(
  topic: string,
  decode: (value: Buffer) => Promise<T> | T,
  timeoutMs = 60_000,
): Promise<T[]> {
  const records: T[] = [];
  await readTopicToEnd(
    stackKafka('devstack-reader'),
    topic,
    async (_partition, message) => {
      if (message.value) records.push(await decode(message.value));
    },
    { timeoutMs, groupIdPrefix: 'devstack-reader' },
  );
  return records;
}

/**
 * Waits until consumer group `groupId` has committed, on every partition of `topic`, an offset at or beyond
 * `upTo` (per partition; default: the topic's end offsets now, so "everything written so far is processed").
 * A topic written only in transactions ends in a commit (or abort) marker that no consumer processes, so with
 * `transactional` an end offset counts as reached one short of itself. Once it holds, whatever the group
 * produces for those records (outputs, dead letters) is written: the condition to wait on before checking
 * that nothing more arrives, instead of a fixed sleep.
 */
export async function groupCommitted(
  groupId: string,
  topic: string,
  opts: { upTo?: Map<number, bigint>; transactional?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  await withAdmin(async (admin) => {
    const upTo =
      opts.upTo ??
      new Map(
        (await admin.fetchTopicOffsets(topic))
          .filter((o) => BigInt(o.high) > BigInt(o.low))
          .map((o) => [o.partition, BigInt(o.high) - (opts.transactional ? 1n : 0n)]),
      );
    await eventually(
      `consumer group ${groupId} to commit ${topic} up to ${[...upTo].map(([p, o]) => `${p}@${o}`).join(', ')}`,
      async () => {
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
        return [...upTo].every(([p, o]) => (at.get(p) ?? -1n) >= o) ? true : undefined;
      },
      opts.timeoutMs ?? 90_000,
      250,
    );
  });
}
