/**
 * The Kafka topics of the pipeline, one name each. `docs/architecture.md` (Data stores: Kafka) lists
 * their keys, partitions, retention and which service writes and reads them; keep the two in step.
 */
export interface Topics {
  /** VoteCast, key pollId/voterId. Written by ingest, read by stream (dedupe). */
  votes: string;
  /** PollEvent, key pollId, compacted. Written by ingest (admin API), read by everyone (the poll catalog). */
  polls: string;
  /** VoteDecision, key pollId/voterId. Written by stream (dedupe), read by projections (receipts). */
  voteDecisions: string;
  /** TallyUpdate per source partition, key pollId. Written by dedupe tasks, read by the global tally stage. */
  tallyPartials: string;
  /** TallyUpdate, key pollId. Written by the global tally stage, read by projections. */
  tallies: string;
  /**
   * VoteAnalytics, key pollId/voterPseudonym: every decision without the voter's identity. Written by the dedupe
   * stage (same transaction as the decision), read by data engineers' consumers; the raw topics are not theirs.
   */
  analyticsVotes: string;
  /**
   * Records a consumer could not decode, bytes and key unchanged, source topic/partition/offset and reason in
   * headers (`dead-letter.ts`). Written by the stream stages (in their transactions) and projections; read by
   * operators only.
   */
  deadLetters: string;
}

export function topicNames(prefix: string): Topics {
  return {
    votes: `${prefix}votes`,
    polls: `${prefix}polls`,
    voteDecisions: `${prefix}vote-decisions`,
    tallyPartials: `${prefix}tally-partials`,
    tallies: `${prefix}tallies`,
    analyticsVotes: `${prefix}analytics-votes`,
    deadLetters: `${prefix}dead-letters`,
  };
}

/**
 * Key of a vote and of its decision (and of the dedupe changelog and the Redis admission hash tag): one voter's
 * votes in one poll always share a partition (and a Redis cluster slot).
 */
export function voteKey(pollId: string, voterId: string): string {
  return `${pollId}/${voterId}`;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
  configs: Record<string, string>;
}

/**
 * The pipeline's topics with their partition counts and configs, for the local stack and tests.
 * Production creates the same topics from terraform/ (MSK) with more partitions and replication factor 3.
 * votes and vote-decisions share a partition count (same key): the stream task for votes partition p writes
 * the decisions of partition p.
 */
export function pipelineTopicSpecs(
  prefix: string,
  opts: { votePartitions?: number; tallyPartitions?: number } = {},
): TopicSpec[] {
  const t = topicNames(prefix);
  const votePartitions = opts.votePartitions ?? 8;
  const tallyPartitions = opts.tallyPartitions ?? 4;
  const hours = (h: number) => String(h * 3600 * 1000);
  // Retention as in production (terraform/modules/kafka-topics). min.insync.replicas is left to the cluster
  // (2 on MSK with replication factor 3): a topic-level 1 would let acks=all acknowledge a single copy.
  return [
    { topic: t.votes, partitions: votePartitions, configs: { 'retention.ms': hours(72) } },
    { topic: t.polls, partitions: 1, configs: { 'cleanup.policy': 'compact' } },
    { topic: t.voteDecisions, partitions: votePartitions, configs: { 'retention.ms': hours(72) } },
    { topic: t.tallyPartials, partitions: tallyPartitions, configs: { 'retention.ms': hours(24) } },
    { topic: t.tallies, partitions: tallyPartitions, configs: { 'retention.ms': hours(7 * 24) } },
    // Pseudonymous: kept longer than the raw topics (its salts die with them), for analyses after the show.
    { topic: t.analyticsVotes, partitions: votePartitions, configs: { 'retention.ms': hours(30 * 24) } },
    // Few records (poison only), kept long enough for an operator to look after an alert.
    { topic: t.deadLetters, partitions: 1, configs: { 'retention.ms': hours(14 * 24) } },
  ];
}

/** Creates the topics that do not exist yet; an existing topic with another partition count is an error. */
export async function ensureTopics(
  admin: import('kafkajs').Admin,
  specs: TopicSpec[],
  replicationFactor = 1,
): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length > 0) {
    // waitForLeaders off: KafkaJS's own wait can throw UNKNOWN_TOPIC_OR_PARTITION while a busy broker is still
    // propagating new topics; the bounded wait below retries instead.
    await admin.createTopics({
      waitForLeaders: false,
      topics: missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions,
        replicationFactor,
        configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  const meta = await waitForLeaders(
    admin,
    specs.map((s) => s.topic),
  );
  for (const spec of specs) {
    const n = meta.topics.find((m) => m.name === spec.topic)?.partitions.length ?? 0;
    if (n !== spec.partitions) {
      throw new Error(`topic ${spec.topic} has ${n} partitions, expected ${spec.partitions}`);
    }
  }
  await waitForServedPartitions(
    admin,
    specs.map((s) => s.topic),
  );
}

/**
 * Waits until the end offsets of every topic can be read. A leader in the metadata is not enough: a KRaft broker
 * can name itself leader of a new topic's partition before it serves it, and KafkaJS's fetchTopicOffsets does not
 * retry the NOT_LEADER_FOR_PARTITION it then answers (an ingest start-up that read a just-created topic's end
 * offsets failed on it). Bounded: 60 attempts, 500 ms apart, then the last error.
 */
export async function waitForServedPartitions(admin: import('kafkajs').Admin, topics: string[]): Promise<void> {
  const attemptsMax = 60;
  for (let attempt = 1; ; attempt++) {
    try {
      await Promise.all(topics.map((t) => admin.fetchTopicOffsets(t)));
      return;
    } catch (err) {
      if (attempt >= attemptsMax)
        throw new Error(
          `topics ${topics.join(', ')} do not answer for their partitions after ${attemptsMax} attempts`,
          {
            cause: err,
          },
        );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Fails start-up with an error naming the missing topics (auto-creation is off everywhere), instead of a
 * KafkaJS protocol error from deep inside a consumer.
 */
export async function requireTopics(admin: import('kafkajs').Admin, topics: string[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    throw new Error(
      `Kafka topics missing: ${missing.join(', ')}. Topic auto-creation is off: create them first ` +
        '(npm run topics on the local stack; terraform/modules/kafka-topics in production).',
    );
  }
}

/**
 * Waits until every partition of every topic has a leader, and returns their metadata. Bounded: 60 attempts,
 * 500 ms apart, then an error naming the topics. Used instead of KafkaJS's createTopics waitForLeaders, which
 * can throw UNKNOWN_TOPIC_OR_PARTITION while a busy broker is still propagating a new topic.
 */
export async function waitForLeaders(
  admin: import('kafkajs').Admin,
  topics: string[],
): Promise<Awaited<ReturnType<import('kafkajs').Admin['fetchTopicMetadata']>>> {
  const attemptsMax = 60;
  for (let attempt = 1; ; attempt++) {
    const meta = await admin.fetchTopicMetadata({ topics }).catch(() => undefined);
    const ready =
      meta !== undefined &&
      topics.every((t) => {
        const parts = meta.topics.find((m) => m.name === t)?.partitions ?? [];
        return parts.length > 0 && parts.every((p) => p.leader >= 0);
      });
    if (ready) return meta;
    if (attempt >= attemptsMax) {
      throw new Error(`topics ${topics.join(', ')} have no leader on every partition after ${attemptsMax} attempts`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
