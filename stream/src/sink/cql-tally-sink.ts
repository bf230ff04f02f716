import { cqlTallyWriter } from '@votestream/read-models';
import {
  AtLeastOnceLoop,
  batchRetryDelayMs,
  type CqlClient,
  deadLetterCounter,
  exportConsumerLag,
  type Logger,
} from '@votestream/runtime';
import type { AvroSerde, TallyUpdate } from '@votestream/schemas';
import type { Kafka, Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';

/**
 * The CQL tally sink: a separate consumer of the `tallies` topic (read_committed) that writes every global
 * TallyUpdate as absolute values with `USING TIMESTAMP <version>`. It is the libs/runtime `AtLeastOnceLoop` (offsets
 * committed only after the writes succeeded, a CQL error retried with back-off and never skipped); the writes are
 * idempotent by construction (same version = same cells, an older version loses to a newer one), which makes the
 * table exactly the latest tally. It is not part of the stage-2 transaction on purpose: a CQL outage then delays
 * only the tables, never the Kafka pipeline.
 */
export class CqlTallySink {
  private readonly loop: AtLeastOnceLoop<TallyUpdate>;

  constructor(o: {
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
    /** The sink's consumer stopped for good (KafkaJS will not restart it): see AtLeastOnceLoop. */
    onFatal: (err: unknown) => void;
  }) {
    const consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
    });
    const written = new Counter({
      name: 'stream_sink_tallies_written_total',
      help: 'TallyUpdates written to CQL',
      registers: [o.registry],
    });
    const failures = new Counter({
      name: 'stream_sink_write_failures_total',
      help: 'Failed CQL writes (retried)',
      registers: [o.registry],
    });
    exportConsumerLag(consumer, o.registry, {
      name: 'stream_consumer_lag_records',
      help: 'Records of the input partition not yet fetched by this stage (after the last batch)',
      labels: { stage: 'sink' },
    });
    const tables = cqlTallyWriter(o.cql, o.keyspace);
    this.loop = new AtLeastOnceLoop<TallyUpdate>({
      consumer,
      topic: o.talliesTopic,
      fromBeginning: true,
      partitionsConsumedConcurrently: 1,
      decode: o.serde.decoder('TallyUpdate'),
      deadLetters: {
        ...o.deadLetters,
        consumer: o.groupId,
        counter: deadLetterCounter(o.registry, 'stream'),
      },
      apply: async (updates) => {
        // The newest update per poll is enough for the totals; every window of every update is written.
        const latest = new Map<string, TallyUpdate>();
        const windows = new Map<string, { tally: TallyUpdate; window: TallyUpdate['windows'][number] }>();
        for (const u of updates) {
          const prev = latest.get(u.pollId);
          if (!prev || u.version > prev.version) latest.set(u.pollId, u);
          for (const w of u.windows) {
            const k = `${u.pollId}/${w.windowStart}`;
            const had = windows.get(k);
            if (!had || u.version > had.tally.version) windows.set(k, { tally: u, window: w });
          }
        }
        await tables.write(latest.values(), windows.values());
        written.inc(latest.size);
      },
      retryDelayMs: batchRetryDelayMs,
      // Records applied are not counted separately: stream_sink_tallies_written_total counts the polls' rows.
      metrics: { failures },
      logger: o.logger,
      onFatal: o.onFatal,
    });
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
