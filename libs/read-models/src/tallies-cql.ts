import type { CqlClient } from '@votestream/runtime';
import cassandra from 'cassandra-driver';
import type { AuditCheckpointView, Results } from './types.ts';

const { consistencies } = cassandra.types;

/**
 * The CQL tally tables (migrations/cql/001_tallies.cql, docs/components/stream.md): `poll_totals` and
 * `poll_tally_windows`, the source of truth behind Redis. Their one owner: the writer the stream's tally sink
 * uses and the reader of the results API are both here, so their layout is known in one place.
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

/** One tally version as the tally sink writes it (a TallyUpdate of the `tallies` topic). */
export interface TallyRow {
  pollId: string;
  version: number;
  totals: Record<string, number>;
  total: number;
  lateVotes: number;
  watermark: number;
  asOf: number;
  final: boolean;
  /** The signed audit checkpoint; kept with the final tally only. */
  audit?: object | null;
}

/** One window of a tally version. */
export interface TallyWindowRow {
  windowStart: number;
  windowEnd: number;
  counts: Record<string, number>;
  late: number;
}

export interface TallyWriter {
  /**
   * Writes the newest version of each poll's totals and every window, each absolute and with `USING TIMESTAMP
   * <version>` (LOCAL_QUORUM, idempotent), so a replayed or older version never overwrites a newer one.
   */
  write(latest: Iterable<TallyRow>, windows: Iterable<{ tally: TallyRow; window: TallyWindowRow }>): Promise<unknown>;
}

export function cqlTallyWriter(cql: CqlClient, keyspace: string): TallyWriter {
  const totalsCql = `INSERT INTO ${keyspace}.poll_totals (poll_id, version, totals, total, late_votes, watermark, as_of, final, audit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`;
  const windowCql = `INSERT INTO ${keyspace}.poll_tally_windows (poll_id, window_start, window_end, counts, total, late, version) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`;
  const options = { prepare: true, consistency: consistencies.localQuorum, isIdempotent: true };
  const long = (n: number) => cassandra.types.Long.fromNumber(n);
  return {
    write(latest, windows) {
      const queries: Array<Promise<unknown>> = [];
      for (const u of latest) {
        const ts = long(u.version);
        queries.push(
          cql.execute(
            totalsCql,
            [
              u.pollId,
              ts,
              longs(u.totals),
              long(u.total),
              long(u.lateVotes),
              new Date(u.watermark),
              new Date(u.asOf),
              u.final,
              // The signed audit checkpoint is kept with the final tally only (unset: the cell is not written).
              u.final && u.audit ? JSON.stringify(u.audit) : cassandra.types.unset,
              ts,
            ],
            options,
          ),
        );
      }
      for (const { tally: u, window: w } of windows) {
        const ts = long(u.version);
        let total = 0;
        for (const n of Object.values(w.counts)) total += n;
        queries.push(
          cql.execute(
            windowCql,
            [
              u.pollId,
              new Date(w.windowStart),
              new Date(w.windowEnd),
              longs(w.counts),
              long(total),
              long(w.late),
              ts,
              ts,
            ],
            options,
          ),
        );
      }
      return Promise.all(queries);
    },
  };
}

function longs(counts: Record<string, number>): Record<string, cassandra.types.Long> {
  const out: Record<string, cassandra.types.Long> = {};
  for (const [k, n] of Object.entries(counts)) out[k] = cassandra.types.Long.fromNumber(n);
  return out;
}
