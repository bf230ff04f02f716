import type { ReadModelWriter } from '@votestream/read-models';
import type { Logger } from '@votestream/runtime';
import type { VoteDecision } from '@votestream/schemas';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Counter, Histogram } from 'prom-client';

/**
 * Projects `vote-decisions` (read_committed) into the ballot receipts ledger in CQL: decode the batch,
 * upsert every receipt (idempotent, USING TIMESTAMP decidedAt), then commit the batch's offsets.
 */
export class ReceiptProjector {
  constructor(
    private readonly opts: {
      consumer: Consumer;
      topic: string;
      /** Decodes a record; null for a poison record it dead-lettered (skipped, committed past). */
      decode: (topic: string, partition: number, message: KafkaMessage) => Promise<VoteDecision | null>;
      writer: ReadModelWriter;
      metrics: { records: Counter<'topic'>; writeSeconds: Histogram<'model'> };
      logger: Logger;
    },
  ) {}

  async start(fromBeginning: boolean): Promise<void> {
    const { consumer, topic } = this.opts;
    await consumer.connect();
    // A fetch that held only transaction markers (vote-decisions is written in transactions) never reaches
    // eachBatch; KafkaJS moves past it without committing. Commit past it, so the committed position reaches the
    // partition's end: ingest's stale-vote resolution waits for exactly that (ingest/src/votes/resolution.ts).
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize !== 0 || payload.topic !== topic) return;
      const offset = (BigInt(payload.lastOffset) + 1n).toString();
      consumer
        .commitOffsets([{ topic, partition: payload.partition, offset }])
        .catch((err: unknown) => this.opts.logger.debug({ err }, 'commit past transaction markers failed'));
    });
    await consumer.subscribe({ topic, fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 2,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const decisions: VoteDecision[] = [];
    for (const message of batch.messages) {
      const decision = await this.opts.decode(batch.topic, batch.partition, message);
      if (decision !== null) decisions.push(decision);
    }
    const stop = this.opts.metrics.writeSeconds.startTimer({ model: 'receipts' });
    await this.opts.writer.writeReceipts(decisions);
    stop();
    this.opts.metrics.records.inc({ topic: 'vote-decisions' }, decisions.length);
    // Resolve too: with eachBatchAutoResolve off, KafkaJS fetches from the last resolved offset, so a batch that
    // is only committed is fetched and processed again, forever.
    resolveOffset(batch.lastOffset());
    await this.opts.consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() },
    ]);
    await heartbeat();
  }
}
