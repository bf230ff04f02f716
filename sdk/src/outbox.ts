/**
 * The durable outbox: a vote is written here (with its Idempotency-Key) before the first byte goes on the wire, and
 * leaves only when the server has given a final answer. An app killed mid-vote finds it on the next start and
 * `flushOutbox()` resends it with the same key, so the server answers the original result instead of counting twice.
 *
 * Storage is a small async key-value interface: AsyncStorage (React Native), localStorage, or anything with
 * getItem/setItem/removeItem. The whole outbox is one JSON document under one key, rewritten on each change; with
 * `outboxEntriesMax` entries of ~1 KB that is a few KB, and one document means a crash can never leave half an update.
 */

import { invariantSdk } from './invariant.ts';

/** The AsyncStorage shape (also satisfied by an adapter over localStorage). */
export interface KeyValueStorage {
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
  removeItem(key: string): Promise<void>;
}

/** Anything with AsyncStorage-like methods, synchronous (localStorage) or asynchronous (AsyncStorage). */
export interface StorageLike {
  getItem(key: string): Promise<string | null> | string | null;
  setItem(key: string, value: string): Promise<void> | void;
  removeItem(key: string): Promise<void> | void;
}

/** Adapter for `@react-native-async-storage/async-storage`, `window.localStorage`, or a similar store. */
export function asyncStorageAdapter(store: StorageLike): KeyValueStorage {
  return {
    getItem: async (key) => (await store.getItem(key)) ?? null,
    setItem: async (key, value) => {
      await store.setItem(key, value);
    },
    removeItem: async (key) => {
      await store.removeItem(key);
    },
  };
}

/** In-memory storage: survives nothing but the client object; for tests and for apps that opt out of durability. */
export function createMemoryStorage(): KeyValueStorage & { snapshot(): Map<string, string> } {
  const data = new Map<string, string>();
  return {
    getItem: async (key) => data.get(key) ?? null,
    setItem: async (key, value) => {
      data.set(key, value);
    },
    removeItem: async (key) => {
      data.delete(key);
    },
    snapshot: () => new Map(data),
  };
}

/** One vote that has no final answer yet. */
export interface OutboxEntry {
  pollId: string;
  optionId: string;
  /** Chosen once, when the vote enters the outbox; every attempt, across restarts, sends this same key. */
  idempotencyKey: string;
  createdAtMs: number;
  /** The token's `sub` when the vote was cast, so another signed-in voter on the same device never sends it. */
  voter: string | null;
  /** The solved X-Altcha value, kept so a resend after a restart does not redo the proof of work. */
  altcha: string | null;
  /** True once a request carrying this vote may have reached the server. */
  sent: boolean;
}

export interface OutboxLimits {
  /** Unacknowledged votes kept at most; castVote answers `outbox_full` beyond (one per poll, so 100 is generous). */
  outboxEntriesMax: number;
  /** A vote older than this is dropped on the next load (the poll it was for is long closed). */
  outboxEntryTtlMs: number;
}

export const defaultOutboxLimits: Readonly<OutboxLimits> = Object.freeze({
  outboxEntriesMax: 100,
  outboxEntryTtlMs: 24 * 60 * 60 * 1000,
});

interface OutboxDocument {
  v: 1;
  entries: OutboxEntry[];
}

/**
 * Entries are keyed by pollId: one voter has at most one vote per poll. All operations are serialised through one
 * promise chain, so two concurrent castVote calls never lose each other's write (read-modify-write is not atomic
 * in AsyncStorage).
 */
export class Outbox {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly key: string;

  constructor(
    private readonly storage: KeyValueStorage,
    namespace: string,
    private readonly limits: OutboxLimits = defaultOutboxLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.key = `${namespace}:outbox:v1`;
  }

  /** All live entries, oldest first, and those that expired (already removed from storage). */
  list(): Promise<{ entries: OutboxEntry[]; expired: OutboxEntry[] }> {
    return this.serial(async () => {
      const { live, expired } = await this.load();
      if (expired.length > 0) await this.save(live);
      return { entries: live, expired };
    });
  }

  get(pollId: string): Promise<OutboxEntry | null> {
    return this.serial(async () => (await this.load()).live.find((e) => e.pollId === pollId) ?? null);
  }

  /** Adds the entry unless the poll already has one (returned instead) or the outbox is full (returns 'full'). */
  add(entry: OutboxEntry): Promise<{ added: true } | { added: false; existing: OutboxEntry } | 'full'> {
    return this.serial(async () => {
      const { live } = await this.load();
      const existing = live.find((e) => e.pollId === entry.pollId);
      if (existing) return { added: false as const, existing };
      if (live.length >= this.limits.outboxEntriesMax) return 'full' as const;
      live.push(entry);
      await this.save(live);
      return { added: true as const };
    });
  }

  /** Replaces the poll's entry (same idempotency key required: the key of a vote never changes). */
  update(entry: OutboxEntry): Promise<void> {
    return this.serial(async () => {
      const { live } = await this.load();
      const i = live.findIndex((e) => e.pollId === entry.pollId);
      if (i < 0) return; // removed meanwhile (answered by a concurrent flush): nothing to update
      invariantSdk(
        live[i]!.idempotencyKey === entry.idempotencyKey,
        'an outbox entry never changes its Idempotency-Key',
      );
      live[i] = entry;
      await this.save(live);
    });
  }

  /** Removes the poll's entry if it still carries this key. */
  remove(pollId: string, idempotencyKey: string): Promise<void> {
    return this.serial(async () => {
      const { live } = await this.load();
      const next = live.filter((e) => !(e.pollId === pollId && e.idempotencyKey === idempotencyKey));
      if (next.length !== live.length) await this.save(next);
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op, op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async load(): Promise<{ live: OutboxEntry[]; expired: OutboxEntry[] }> {
    const raw = await this.storage.getItem(this.key);
    const entries = raw === null ? [] : parseDocument(raw);
    const oldest = this.now() - this.limits.outboxEntryTtlMs;
    const live: OutboxEntry[] = [];
    const expired: OutboxEntry[] = [];
    for (const e of entries) (e.createdAtMs >= oldest ? live : expired).push(e);
    return { live, expired };
  }

  private async save(entries: OutboxEntry[]): Promise<void> {
    if (entries.length === 0) {
      await this.storage.removeItem(this.key);
      return;
    }
    const doc: OutboxDocument = { v: 1, entries };
    await this.storage.setItem(this.key, JSON.stringify(doc));
  }
}

/** Tolerates a corrupt or foreign document (keeps the valid entries) rather than wedging every future vote. */
function parseDocument(raw: string): OutboxEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return [];
  }
  const entries = (doc as { entries?: unknown })?.entries;
  if (!Array.isArray(entries)) return [];
  return entries.filter(isEntry);
}

function isEntry(e: unknown): e is OutboxEntry {
  if (typeof e !== 'object' || e === null) return false;
  const o = e as Record<string, unknown>;
  return (
    typeof o.pollId === 'string' &&
    typeof o.optionId === 'string' &&
    typeof o.idempotencyKey === 'string' &&
    typeof o.createdAtMs === 'number' &&
    (o.voter === null || typeof o.voter === 'string') &&
    (o.altcha === null || typeof o.altcha === 'string') &&
    typeof o.sent === 'boolean'
  );
}
