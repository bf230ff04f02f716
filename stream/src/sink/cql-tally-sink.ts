import { cqlTallyWriter } from '@votestream/read-models';
import {
  type CqlClient,
  deadLetterCounter,
  deadLetterDecoder,
  exportConsumerLag,
  type Logger,
} from '@votestream/runtime';
import type { AvroSerde, TallyUpdate } from '@votestream/schemas';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';

/** Retry delay bounds while the CQL database is unreachable; the sink never skips a record. */
export const sinkRetryDelayMsMin = 200;
export const sinkRetryDelayMsMax = 5000;

/**
 * The CQL tally sink: a separate consumer of the `tallies` topic (read_committed) that writes every global
 * TallyUpdate as absolute values with `USING TIMESTAMP <version>`. It commits its offsets only after the writes
 * succeeded, so it is at-least-once; the writes are idempotent by construction (same version = same cells, an
 * older version loses to a newer one), which makes the table exactly the latest tally. It is not part of the
 * stage-2 transaction on purpose: a CQL outage then delays only the tables, never the Kafka pipeline.
 */
export class CqlTallySink {
  private readonly consumer: Consumer;
  private readonly written: Counter;
  private readonly failures: Counter;
  private running = true;

  constructor(
    private readonly o: {
      kafka: Kafka;
      cql: CqlClient;
      keyspace: string;
      talliesTopic: string;
      groupId: string;
      serde: AvroSerde;
      logger: Logger;
      registry: Registry;
      /** Undecodable tallies are copied here (at least once, before the offset moves past them). */
      deadLetters: { producer: Producer; topic: string };
    },
  ) {
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
    });
    this.written = new Counter({
      name: 'stream_sink_tallies_written_total',
      help: 'TallyUpdates written to CQL',
      registers: [o.registry],
    });
    this.failures = new Counter({
      name: 'stream_sink_write_failures_total',
      help: 'Failed CQL writes (retried)',
      registers: [o.registry],
    });
  }

  async start(): Promise<void> {
    const { consumer, o } = this;
    exportConsumerLag(consumer, o.registry, {
      name: 'stream_consumer_lag_records',
      help: 'Records of the input partition not yet fetched by this stage (after the last batch)',
      labels: { stage: 'sink' },
    });
    const decode = deadLetterDecoder({
      producer: o.deadLetters.producer,
      deadLetterTopic: o.deadLetters.topic,
      consumer: o.groupId,
      counter: deadLetterCounter(o.registry, 'stream'),
      decode: o.serde.decoder('TallyUpdate'),
    });
    const tables = cqlTallyWriter(o.cql, o.keyspace);
    await consumer.connect();
    await consumer.subscribe({ topics: [o.talliesTopic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
        // The newest update per poll is enough for the totals; every window of every update is written.
        const latest = new Map<string, TallyUpdate>();
        const windows = new Map<string, { tally: TallyUpdate; window: TallyUpdate['windows'][number] }>();
        for (const m of batch.messages) {
          const u = await decode(batch.topic, batch.partition, m);
          if (u === null) continue; // poison: dead-lettered
          const prev = latest.get(u.pollId);
          if (!prev || u.version > prev.version) latest.set(u.pollId, u);
          for (const w of u.windows) {
            const k = `${u.pollId}/${w.windowStart}`;
            const had = windows.get(k);
            if (!had || u.version > had.tally.version) windows.set(k, { tally: u, window: w });
          }
        }
        const write = () => tables.write(latest.values(), windows.values());
        for (let attempt = 0; ; attempt++) {
          try {
            await write();
            break;
          } catch (err) {
            this.failures.inc();
            if (!this.running) throw err;
            o.logger.warn({ err, attempt }, 'CQL tally write failed, retrying');
            await heartbeat();
            await new Promise((r) => setTimeout(r, Math.min(sinkRetryDelayMsMax, sinkRetryDelayMsMin * 2 ** attempt)));
          }
        }
        const last = batch.messages[batch.messages.length - 1];
        if (last) {
          resolveOffset(last.offset);
          const offset = String(BigInt(last.offset) + 1n);
          await commitOffsetsIfNecessary({
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset }] }],
          });
        }
        this.written.inc(latest.size);
        await heartbeat();
      },
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer.disconnect();
  }
}
