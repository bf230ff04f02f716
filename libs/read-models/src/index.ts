import type { CqlClient, Logger, RedisClient } from '@votestream/runtime';
import { resultsKey } from './keys.ts';
import { pickReceipt, readReceipts, writeReceipts } from './receipts.ts';
import { casResultsBatch, newest, parseResults, resultsFromTally } from './results.ts';
import { cqlTallyStore, type TallyStore } from './tallies-cql.ts';
import type { DecisionInput, LiveSeries, Receipt, Results, TallyInput } from './types.ts';

export * from './keys.ts';
export { pickReceipt, readReceipts, receiptsPerVoterMax, writeReceipts } from './receipts.ts';
export {
  casResultsBatch,
  casResultsLua,
  newest,
  parseResults,
  parseSeries,
  resultsFromTally,
  scanLatest,
  scanPollsMax,
} from './results.ts';
export {
  cqlTallyStore,
  cqlTallyWriter,
  type TallyRow,
  type TallyStore,
  type TallyWindowRow,
  type TallyWriter,
} from './tallies-cql.ts';
export * from './types.ts';

export interface ReadModelsOptions {
  redis: RedisClient;
  cql: CqlClient;
  keyspace: string;
  redisPrefix: string;
  logger?: Logger;
  /** How many polls' last returned results this instance remembers (to never go backwards); oldest forgotten first. */
  returnedPollsMax?: number;
  /** Override where the CQL tallies are read from (tests). */
  tallyStore?: TallyStore;
}

export interface ReadModels {
  /**
   * The latest results of a poll: from Redis, else from the CQL tallies (then written back to Redis).
   * Never older than a version this instance already returned for the poll. Null if the poll has no tally yet.
   */
  getResults(pollId: string): Promise<Results | null>;
  /** A voter's receipt (see pickReceipt); null means pending. */
  getReceipt(pollId: string, voterId: string, voteId?: string): Promise<Receipt | null>;
  /** All of a voter's receipts in a poll, oldest first. */
  getReceipts(pollId: string, voterId: string): Promise<Receipt[]>;
}

export function createReadModels(opts: ReadModelsOptions): ReadModels {
  const { redis, cql, keyspace, redisPrefix, logger } = opts;
  const returnedPollsMax = opts.returnedPollsMax ?? 10_000;
  const tallies = opts.tallyStore ?? cqlTallyStore(cql, keyspace);
  // Last results returned per poll, in least-recently-returned order (Map keeps insertion order).
  const returned = new Map<string, Results>();
  const remember = (r: Results) => {
    returned.delete(r.pollId);
    returned.set(r.pollId, r);
    if (returned.size > returnedPollsMax) {
      const oldest = returned.keys().next().value;
      if (oldest !== undefined) returned.delete(oldest);
    }
  };

  return {
    async getResults(pollId) {
      const last = returned.get(pollId);
      let fromRedis: Results | null = null;
      try {
        const json = await redis.hget(resultsKey(redisPrefix, pollId), 'json');
        if (json !== null) fromRedis = parseResults(json);
      } catch (err) {
        // Redis down or slow: the CQL tallies are the source of truth, fall through to them.
        logger?.warn({ err, pollId }, 'results: Redis read failed, reading CQL tallies');
      }
      if (fromRedis && (!last || fromRedis.version >= last.version)) {
        remember(fromRedis);
        return fromRedis;
      }
      // Redis has nothing, or something older than we already returned (it lost data): ask the source of truth.
      const fromCql = await tallies.read(pollId);
      const best = newest(last, fromRedis, fromCql);
      if (best === null) return null;
      if (fromCql && best === fromCql && (!fromRedis || fromCql.version > fromRedis.version)) {
        // Repair Redis; the CAS keeps a newer concurrent projector write.
        await casResultsBatch(redis, redisPrefix, [fromCql]).catch((err: unknown) =>
          logger?.warn({ err, pollId }, 'results: Redis repair failed'),
        );
      }
      remember(best);
      return best;
    },
    async getReceipt(pollId, voterId, voteId) {
      return pickReceipt(await readReceipts(cql, keyspace, pollId, voterId), voteId);
    },
    getReceipts(pollId, voterId) {
      return readReceipts(cql, keyspace, pollId, voterId);
    },
  };
}

export interface ReadModelWriter {
  /**
   * CAS each poll's results (and, optionally, its series at that version) into Redis on version;
   * returns per tally whether it was newer than what Redis held.
   */
  writeResults(tallies: readonly TallyInput[], series?: readonly (LiveSeries | null)[]): Promise<boolean[]>;
  /** Upsert receipts into the CQL ledger (idempotent). */
  writeReceipts(decisions: readonly DecisionInput[]): Promise<void>;
}

/** The writers projections uses; they live here so the storage layout is defined once. */
export function createReadModelWriter(opts: {
  redis: RedisClient;
  cql: CqlClient;
  keyspace: string;
  redisPrefix: string;
}): ReadModelWriter {
  return {
    writeResults: (tallies, series) =>
      casResultsBatch(opts.redis, opts.redisPrefix, tallies.map(resultsFromTally), series),
    writeReceipts: (decisions) => writeReceipts(opts.cql, opts.keyspace, decisions),
  };
}
