import { createHash } from 'node:crypto';

/**
 * Where the read models live, in one place: Redis keys, CQL table names and MQTT topics.
 * Writers (projections) and readers (ingest's results/receipt APIs, the live page, the SDK) import these.
 */

/** Redis hash holding the latest results of one poll: fields `version` (decimal) and `json` (Results). */
export function resultsKey(redisPrefix: string, pollId: string): string {
  // The braces are a Redis Cluster hash tag: every key of one poll lands on one slot.
  return `${redisPrefix}results:{${pollId}}`;
}

export const cqlTables = {
  /** Ballot receipts, migrations/cql/002_receipts.cql. */
  ballotReceipts: 'ballot_receipts',
} as const;

/** Receipts are keyed by a hash of the voter id, never the raw id (which stays on the vote path). */
export function voterKey(voterId: string): string {
  return createHash('sha256').update(voterId).digest('base64url');
}

/** MQTT topics of the live totals. Anonymous clients may subscribe under `votestream/polls/#`; only projections publishes. */
export const liveTopics = {
  root: 'votestream/polls',
  /** Retained, QoS 1, JSON LiveTotals. */
  totals: (pollId: string): string => `votestream/polls/${pollId}/totals`,
  /** Retained, QoS 1, JSON LiveSeries: the per-window counts for graphics that draw the rate of votes. */
  series: (pollId: string): string => `votestream/polls/${pollId}/series`,
} as const;
