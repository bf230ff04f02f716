import type { AvroSerde, VoteAnalytics, VoteDecision } from '@votestream/schemas';
import type { KafkaMessage } from 'kafkajs';
import { analyticsOf } from '../analytics/pseudonymise.ts';
import type { RecordCollector } from '../runtime/collector.ts';
import { ChangelogCorruptError } from '../runtime/errors.ts';
import type { TaskProcessor } from '../runtime/processor.ts';
import type { ChangelogRecord } from '../runtime/restore.ts';

/**
 * The analytics stage fetches once this many bytes of decisions are there (thousands: a decision is 160-500 B) or
 * STREAM_ANALYTICS_FETCH_MAX_WAIT_MS passed: at peak that is milliseconds, at a trickle one transaction per task per
 * wait instead of one per few decisions.
 */
export const analyticsFetchMinBytes = 1_048_576;

export interface AnalyticsTopics {
  voteDecisions: string;
  /** VoteAnalytics, one per decision, keyed `<pollId>/<pseudonym>`, without the voter's identity. */
  analyticsVotes: string;
  /** Holds only the runtime's task position (this stage keeps no state of its own). */
  positionChangelog: string;
}

export interface AnalyticsContext {
  topics: AnalyticsTopics;
  serde: AvroSerde;
  /** Per-poll salts of the pseudonyms (PollSalts: CQL, cached). */
  salts: { get(pollId: string): Buffer | Promise<Buffer> };
}

/**
 * The analytics stage of one vote-decisions partition: every decision becomes exactly one VoteAnalytics record
 * (the decision without the voter's identity, stream/src/analytics/pseudonymise.ts), in the task's transaction
 * with the decisions' offsets. Stateless: a replay after a crash produces the same records (same salt while it
 * lives), and the transaction makes each appear once. It runs beside stage 1, not inside its transaction, so a
 * dedupe commit writes 4 partitions instead of 4 plus one per analytics partition touched (vote to screen:
 * docs/components/stream.md, "Latency budget").
 */
export class AnalyticsProcessor implements TaskProcessor {
  readonly changelogTopics: readonly string[];
  readonly positionChangelog: string;
  private readonly decodeDecision: (buf: Buffer) => Promise<VoteDecision>;
  private readonly encodeAnalytics: (v: VoteAnalytics) => Buffer;

  constructor(
    private readonly partition: number,
    private readonly ctx: AnalyticsContext,
  ) {
    this.changelogTopics = [ctx.topics.positionChangelog];
    this.positionChangelog = ctx.topics.positionChangelog;
    this.decodeDecision = ctx.serde.decoder('VoteDecision');
    this.encodeAnalytics = ctx.serde.encoder('VoteAnalytics', { validate: false });
  }

  /** The changelog holds the task position only (the runtime applies it); anything else is not ours. */
  restore({ topic, key }: ChangelogRecord): void {
    throw new ChangelogCorruptError(
      `analytics task ${this.partition}: unexpected record ${JSON.stringify(key.toString('utf8', 0, 64))} in ${topic}`,
    );
  }

  restored(): void {}

  async process(messages: readonly KafkaMessage[], out: RecordCollector): Promise<void> {
    const { topics, salts } = this.ctx;
    for (const m of messages) {
      let decision: VoteDecision | undefined;
      let failure: unknown = null; // null with no decision: the record has no value
      if (m.value) {
        try {
          decision = await this.decodeDecision(m.value);
        } catch (err) {
          failure = err;
        }
      }
      if (decision === undefined) {
        if (out.deadLetter(m, failure)) continue; // poison: dead-lettered in this transaction
        throw failure ?? new Error(`vote-decisions record at offset ${m.offset} has no value`);
      }
      const pollId = decision.vote.pollId;
      const salt = salts.get(pollId);
      const analytics = analyticsOf(decision, salt instanceof Buffer ? salt : await salt);
      out.send(topics.analyticsVotes, `${pollId}/${analytics.voterPseudonym}`, this.encodeAnalytics(analytics));
    }
  }

  flush(): void {}

  punctuate(): void {}
}
