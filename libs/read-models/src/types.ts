/**
 * Shapes of the read models. Results is also the JSON body of the live totals MQTT message and of
 * `GET /v1/polls/{pollId}/results`, so every reader sees one shape.
 */

/** The latest tally of one poll. */
export interface Results {
  pollId: string;
  /** Counted votes per optionId (absolute). */
  totals: Record<string, number>;
  /** Sum of totals. */
  total: number;
  /** The tally's version; strictly increases per poll. A reader drops anything not newer than what it has. */
  version: number;
  /** When the stream produced this tally (ISO 8601). */
  asOf: string;
  /** True once the poll closed and its grace passed: the tally will not change again. */
  final: boolean;
  /** On the final results only: the signed audit checkpoint (heads of the decision chains). */
  audit?: AuditCheckpointView;
}

/** The JSON published on `votestream/polls/{pollId}/totals`. */
export type LiveTotals = Results;

/** Counted votes in one tumbling event-time window. */
export interface SeriesWindow {
  windowStart: string;
  windowEnd: string;
  counts: Record<string, number>;
  total: number;
  late: number;
}

/** The JSON published on `votestream/polls/{pollId}/series`: the windows that changed in this version. */
export interface LiveSeries {
  pollId: string;
  version: number;
  windows: SeriesWindow[];
  asOf: string;
  final: boolean;
}

export type ReceiptStatus = 'counted' | 'rejected';

/** A voter's ballot receipt for one vote. No receipt yet means the decision is pending. */
export interface Receipt {
  voteId: string;
  optionId: string;
  status: ReceiptStatus;
  /** Lower-case reject reason (`duplicate`, `poll_closed`, `poll_not_open`, `unknown_poll`, `unknown_option`, `other`); null when counted. */
  reason: string | null;
  /** For a duplicate: the voteId of the voter's vote that counts. */
  countedVoteId: string | null;
  /** When the stream decided (ISO 8601). */
  decidedAt: string;
}

/**
 * What the results writer needs from a TallyUpdate (structurally a subset of the generated
 * `TallyUpdate` from @votestream/schemas, so a decoded record is passed as is).
 */
export interface TallyInput {
  pollId: string;
  version: number;
  totals: Record<string, number>;
  total: number;
  /** Epoch ms. */
  asOf: number;
  final: boolean;
  audit?: AuditCheckpointView | null;
}

/**
 * The audit checkpoint of a final tally (docs/trust.md): the head of each votes partition's hash chain over the
 * poll's decisions, and an Ed25519 signature over (pollId, version, totals, heads). `npm run audit -- verify`
 * checks it against the decisions.
 */
export interface AuditCheckpointView {
  heads: Array<{ source: number; count: number; head: string }>;
  signature: string | null;
  keyId: string | null;
}

/** What the receipts writer needs from a VoteDecision (a structural subset of the generated type). */
export interface DecisionInput {
  vote: { voteId: string; pollId: string; optionId: string; voterId: string; receivedAt: number };
  outcome: 'COUNTED' | 'REJECTED';
  reason: string | null;
  countedVoteId: string | null;
  /** Epoch ms. */
  decidedAt: number;
}
