import type { ReadModelWriter } from '@votestream/read-models';
import type { VoteDecision } from '@votestream/schemas';
import type { Histogram } from 'prom-client';

/**
 * Projects `vote-decisions` (read_committed) into the ballot receipts ledger in CQL: upsert every receipt of a
 * batch (idempotent, USING TIMESTAMP decidedAt). Consuming, retries and offset commits are the at-least-once loop's
 * (`AtLeastOnceLoop` in libs/runtime).
 */
export class ReceiptProjector {
  constructor(
    private readonly opts: {
      writer: ReadModelWriter;
      metrics: { writeSeconds: Histogram<'model'> };
    },
  ) {}

  async apply(decisions: VoteDecision[]): Promise<void> {
    const stop = this.opts.metrics.writeSeconds.startTimer({ model: 'receipts' });
    await this.opts.writer.writeReceipts(decisions);
    stop();
  }
}
