import type { CqlClient } from '@votestream/runtime';
import { invariant } from '@votestream/runtime';
import cassandra from 'cassandra-driver';
import { cqlTables, voterKey } from './keys.ts';
import type { DecisionInput, Receipt, ReceiptStatus } from './types.ts';

const { consistencies } = cassandra.types;

/** Upper bound on rows read for one voter in one poll (their votes: one counted, the rest rejected). */
export const receiptsPerVoterMax = 100;
/** Upper bound on CQL writes in flight from one writeReceipts call. */
export const receiptWritesInFlightMax = 64;

export function receiptStatements(keyspace: string) {
  const table = `${keyspace}.${cqlTables.ballotReceipts}`;
  return {
    // USING TIMESTAMP = decidedAt in microseconds: a replay writes the same cells with the same timestamp,
    // so it is a no-op, and a write can never be beaten by an older decision.
    insert: `INSERT INTO ${table} (poll_id, voter_key, vote_id, option_id, outcome, reason, counted_vote_id, received_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    selectVoter: `SELECT vote_id, option_id, outcome, reason, counted_vote_id, decided_at FROM ${table} WHERE poll_id = ? AND voter_key = ? LIMIT ${receiptsPerVoterMax}`,
  };
}

function receiptParams(d: DecisionInput): unknown[] {
  invariant(d.outcome === 'COUNTED' || d.outcome === 'REJECTED', `unknown decision outcome ${d.outcome}`);
  invariant(
    d.outcome === 'COUNTED' ? d.reason === null : d.reason !== null,
    `vote ${d.vote.voteId}: reason must be set exactly when rejected`,
  );
  return [
    d.vote.pollId,
    voterKey(d.vote.voterId),
    d.vote.voteId,
    d.vote.optionId,
    d.outcome === 'COUNTED' ? 'counted' : 'rejected',
    d.reason === null ? null : d.reason.toLowerCase(),
    d.countedVoteId,
    new Date(d.vote.receivedAt),
    new Date(d.decidedAt),
    cassandra.types.Long.fromNumber(d.decidedAt).multiply(1000),
  ];
}

/** Writes receipts idempotently, at most receiptWritesInFlightMax at a time; rejects if any write fails (the caller must not commit offsets). */
export async function writeReceipts(
  cql: CqlClient,
  keyspace: string,
  decisions: readonly DecisionInput[],
): Promise<void> {
  const { insert } = receiptStatements(keyspace);
  // One INSERT per receipt, not a batch: every receipt is its own partition, and a multi-partition batch
  // would put all the coordination on one coordinator. Idempotent, so the driver may retry it.
  const options = { prepare: true, consistency: consistencies.localQuorum, isIdempotent: true };
  for (let i = 0; i < decisions.length; i += receiptWritesInFlightMax) {
    const chunk = decisions.slice(i, i + receiptWritesInFlightMax);
    await Promise.all(chunk.map((d) => cql.execute(insert, receiptParams(d), options)));
  }
}

function rowToReceipt(row: cassandra.types.Row): Receipt {
  const status = String(row.get('outcome')) as ReceiptStatus;
  invariant(status === 'counted' || status === 'rejected', `bad receipt outcome ${status}`);
  const counted = row.get('counted_vote_id') as cassandra.types.Uuid | null;
  const reason = row.get('reason') as string | null;
  return {
    voteId: String(row.get('vote_id')),
    optionId: String(row.get('option_id')),
    status,
    reason: reason ?? null,
    countedVoteId: counted ? counted.toString() : null,
    decidedAt: (row.get('decided_at') as Date).toISOString(),
  };
}

/** All receipts of one voter in one poll, oldest decision first. */
export async function readReceipts(
  cql: CqlClient,
  keyspace: string,
  pollId: string,
  voterId: string,
): Promise<Receipt[]> {
  const { selectVoter } = receiptStatements(keyspace);
  const rs = await cql.execute(selectVoter, [pollId, voterKey(voterId)], {
    prepare: true,
    consistency: consistencies.localQuorum,
  });
  return rs.rows.map(rowToReceipt).sort((a, b) => a.decidedAt.localeCompare(b.decidedAt));
}

/**
 * The receipt to show a voter: for a given voteId exactly that vote's receipt; otherwise the vote that
 * counts if there is one, else the latest decided vote. Null means pending (no decision yet).
 */
export function pickReceipt(receipts: readonly Receipt[], voteId?: string): Receipt | null {
  if (voteId !== undefined) return receipts.find((r) => r.voteId === voteId) ?? null;
  return receipts.find((r) => r.status === 'counted') ?? receipts[receipts.length - 1] ?? null;
}
