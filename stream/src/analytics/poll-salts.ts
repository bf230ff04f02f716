import { randomBytes } from 'node:crypto';
import { type CqlClient, invariant } from '@votestream/runtime';
import cassandra from 'cassandra-driver';

const { consistencies } = cassandra.types;

/** Bytes of a poll's salt. */
export const pollSaltBytes = 32;
/** Salts one process keeps in memory; past it the oldest is dropped (and read again from CQL when needed). */
export const pollSaltsCachedMax = 10_000;

/**
 * The per-poll salts of the analytics pseudonyms, in CQL (`analytics_salts`, migrations/cql/003). The first task
 * that needs a poll's salt creates it with a lightweight transaction (INSERT IF NOT EXISTS, SERIAL consistency),
 * so every task of every process, and every replay while the salt lives, uses the same one. Each salt is
 * written with a TTL (`ttlS`): when it expires the pseudonyms of that poll can no longer be linked to voters.
 */
export class PollSalts {
  private readonly cache = new Map<string, Buffer>();
  private readonly pending = new Map<string, Promise<Buffer>>();

  constructor(
    private readonly cql: CqlClient,
    private readonly keyspace: string,
    private readonly ttlS: number,
  ) {}

  /** The salt of a poll: from memory, else CQL, else a new one. */
  get(pollId: string): Buffer | Promise<Buffer> {
    const hit = this.cache.get(pollId);
    if (hit) return hit;
    let p = this.pending.get(pollId);
    if (!p) {
      p = this.load(pollId).finally(() => this.pending.delete(pollId));
      this.pending.set(pollId, p);
    }
    return p;
  }

  private async load(pollId: string): Promise<Buffer> {
    const candidate = randomBytes(pollSaltBytes);
    const rs = await this.cql.execute(
      `INSERT INTO ${this.keyspace}.analytics_salts (poll_id, salt, created_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`,
      [pollId, candidate, new Date(), this.ttlS],
      { prepare: true, consistency: consistencies.localQuorum, serialConsistency: consistencies.localSerial },
    );
    // Applied: ours is the salt. Not applied: the row that won comes back with the result.
    const row = rs.first();
    const value =
      row?.get('[applied]') === true
        ? candidate
        : ((row?.get('salt') as Buffer | null) ?? (await this.readBack(pollId)));
    invariant(value.length === pollSaltBytes, `analytics salt of ${pollId} has ${value.length} bytes`);
    if (this.cache.size >= pollSaltsCachedMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(pollId, value);
    return value;
  }

  private async readBack(pollId: string): Promise<Buffer> {
    const rs = await this.cql.execute(`SELECT salt FROM ${this.keyspace}.analytics_salts WHERE poll_id = ?`, [pollId], {
      prepare: true,
      consistency: consistencies.serial,
    });
    const salt = rs.first()?.get('salt') as Buffer | undefined;
    invariant(salt, `analytics salt of ${pollId} missing right after it was written`);
    return salt;
  }
}
