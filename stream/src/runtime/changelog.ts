import { ChangelogCorruptError } from './errors.ts';

/**
 * Typed changelog records. A store's changelog is compacted and keyed by a string; each store has a codec
 * (stream/src/processors/changelogs.ts) that turns its typed keys and values into those bytes and back, and
 * checks what it reads (a record it cannot read throws ChangelogCorruptError: restoring wrong state would count
 * wrongly, so it is fatal).
 *
 * Keys starting with U+0000 are reserved for the runtime (see `taskPosition`); a store codec never writes one.
 */
/** A store's changelog values of one kind, to bytes and back (checked). */
export interface ValueCodec<V> {
  encode(value: V): Buffer;
  decode(value: Buffer): V;
}

export const runtimeKeyPrefix = '\u0000';

/** A JSON value codec whose reads are checked by `is`. */
export function jsonCodec<V>(what: string, is: (v: unknown) => v is V): ValueCodec<V> {
  return {
    encode: (value) => Buffer.from(JSON.stringify(value)),
    decode: (value) => jsonValue(what, value, is),
  };
}

/** Parses a JSON changelog value and checks its shape with `is`; anything else is a corrupt record. */
export function jsonValue<V>(what: string, value: Buffer, is: (v: unknown) => v is V): V {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString());
  } catch (err) {
    throw new ChangelogCorruptError(`${what}: not JSON (${(err as Error).message})`);
  }
  if (!is(parsed)) throw new ChangelogCorruptError(`${what}: unexpected shape ${value.toString().slice(0, 200)}`);
  return parsed;
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const isCounts = (v: unknown): v is Record<string, number> =>
  isRecord(v) && Object.values(v).every((n) => Number.isSafeInteger(n) && (n as number) >= 0);

export const isSafeInt = (v: unknown): v is number => Number.isSafeInteger(v);

/**
 * The task position: the next input offset of the task, written by the runtime in every transaction that moves
 * the input offsets, into the changelog partition the processor names as its `positionChangelog`. It lets a new
 * owner skip records a previous owner committed after our consumer read the group offsets (no KIP-447 in
 * KafkaJS). On disk: key U+0000 "position", value JSON `{"nextOffset":"<decimal>"}` (unchanged since the first
 * release, so existing changelogs restore).
 */
const positionKey = `${runtimeKeyPrefix}position`;
const positionKeyBytes = Buffer.from(positionKey);

export const taskPosition = {
  key: positionKey,
  /** A changelog key (as read, bytes) is the position's. */
  isKey(key: Buffer): boolean {
    return key.equals(positionKeyBytes);
  },
  encode(nextOffset: bigint): Buffer {
    return Buffer.from(JSON.stringify({ nextOffset: String(nextOffset) }));
  },
  decode(value: Buffer): bigint {
    const v = jsonValue(
      'task position',
      value,
      (x): x is { nextOffset: string } => isRecord(x) && typeof x.nextOffset === 'string' && /^\d+$/.test(x.nextOffset),
    );
    return BigInt(v.nextOffset);
  },
} as const;
