import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BatcherStats } from './votes/batcher.ts';

/** Ingest's Prometheus metrics (served on INGEST_METRICS_PORT). The batcher reports its sends through `onBatch`. */
export interface IngestMetrics extends Required<BatcherStats> {
  /** Pre-bound `ingest_votes_total` children by outcome: no label hashing per vote. */
  voteOutcome(outcome: string): Counter.Internal;
  voteSeconds: Histogram;
}

/** Seconds from request to 202: a Kafka acknowledgement (acks=all) is a few ms on a healthy cluster. */
const voteAcceptSecondsBuckets = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Votes per produce request, up to PRODUCE_BATCH_MESSAGES_MAX (1000 by default). */
const batchMessagesBuckets = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];
const batchSecondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** The vote counters and the produce histograms. Gauges that read live state: `registerIngestGauges`. */
export function createIngestMetrics(registry: Registry): IngestMetrics {
  const votes = new Counter({
    name: 'ingest_votes_total',
    help: 'Vote requests by outcome: accepted, or the problem code answered.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const batchMessages = new Histogram({
    name: 'ingest_produce_batch_messages',
    help: 'Votes per Kafka produce request.',
    buckets: batchMessagesBuckets,
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'ingest_produce_batch_seconds',
    help: 'Duration of one produce request (acks=all), by success.',
    labelNames: ['ok'],
    buckets: batchSecondsBuckets,
    registers: [registry],
  });
  // Outcomes are a closed set (accepted, replayed, the problem codes, internal): one child each, bound once.
  const outcomes = new Map<string, Counter.Internal>();
  return {
    voteOutcome(outcome) {
      let child = outcomes.get(outcome);
      if (child === undefined) {
        child = votes.labels(outcome);
        outcomes.set(outcome, child);
      }
      return child;
    },
    voteSeconds: new Histogram({
      name: 'ingest_vote_accept_seconds',
      help: 'From request to 202 (includes the Kafka acknowledgement).',
      buckets: voteAcceptSecondsBuckets,
      registers: [registry],
    }),
    onBatch(messages, seconds, ok) {
      batchMessages.observe(messages);
      batchSeconds.observe({ ok: String(ok) }, seconds);
    },
  };
}

/** Gauges read at scrape time from the parts that hold the state (the batcher, the poll catalog). */
export function registerIngestGauges(registry: Registry, read: { inFlight: () => number; polls: () => number }): void {
  new Gauge({
    name: 'ingest_produce_votes_in_flight',
    help: 'Votes in the batcher not yet acknowledged by Kafka (bounded by PRODUCE_VOTES_IN_FLIGHT_MAX).',
    registers: [registry],
    collect() {
      this.set(read.inFlight());
    },
  });
  new Gauge({
    name: 'ingest_poll_catalog_polls',
    help: 'Polls in the in-memory catalog.',
    registers: [registry],
    collect() {
      this.set(read.polls());
    },
  });
}
