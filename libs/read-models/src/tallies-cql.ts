import type { CqlClient } from '@votestream/runtime';
import cassandra from 'cassandra-driver';
import type { AuditCheckpointView, Results } from './types.ts';

const { consistencies } = cassandra.types;

/**
 * Reads a poll's totals from the CQL tally tables the stream's tally sink writes (the source of truth
 * behind Redis). The tables belong to stream (migrations/cql/001_tallies.cql, docs/components/stream.md);
 * this is the one place the read side knows their layout.
 */
export interface TallyStore {
  read(pollId: string): Promise<Results | null>;
}

export function cqlTallyStore(cql: CqlClient, keyspace: string): TallyStore {
  // poll_totals: one row per poll, absolute totals, version = the cell write timestamp (001_tallies.cql).
  const select = `SELECT poll_id, version, totals, total, as_of, final, audit FROM ${keyspace}.poll_totals WHERE poll_id = ?`;
  return {
    async read(pollId) {
      const rs = await cql.execute(select, [pollId], { prepare: true, consistency: consistencies.localQuorum });
      const row = rs.first();
      if (!row) return null;
      const totals: Record<string, number> = {};
      const raw = (row.get('totals') ?? {}) as Record<string, cassandra.types.Long>;
      for (const [option, n] of Object.entries(raw)) totals[option] = Number(n);
      return {
        pollId,
        totals,
        total: Number(row.get('total')),
        version: Number(row.get('version')),
        asOf: (row.get('as_of') as Date).toISOString(),
        final: Boolean(row.get('final')),
        ...(row.get('final') && row.get('audit')
          ? { audit: JSON.parse(row.get('audit') as string) as AuditCheckpointView }
          : {}),
      };
    },
  };
}
