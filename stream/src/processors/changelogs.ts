// The changelog codecs of the topology's state stores: one place for each store's keys and values on disk.
// The formats are those the stores have always written (existing changelogs restore unchanged); what is new is
// that reads are checked (ChangelogCorruptError, fatal) instead of trusted.
import { voteKey } from '@votestream/runtime';
import { isCounts, isRecord, isSafeInt, jsonCodec, runtimeKeyPrefix, type ValueCodec } from '../runtime/changelog.ts';
import { ChangelogCorruptError } from '../runtime/errors.ts';
import type { WindowState } from './tally-state.ts';

function checkedKey(store: string, key: string): string {
  if (key.startsWith(runtimeKeyPrefix)) throw new ChangelogCorruptError(`${store}: runtime key ${JSON.stringify(key)}`);
  return key;
}

/** `w/<pollId>/<windowStart>`, the window key both tally stores use. */
function windowKeyOf(store: string, key: string): { kind: 'window'; pollId: string; windowStart: number } {
  const at = key.lastIndexOf('/');
  const windowStart = Number(key.slice(at + 1));
  if (at <= 2 || !Number.isSafeInteger(windowStart))
    throw new ChangelogCorruptError(`${store}: bad window key ${JSON.stringify(key)}`);
  return { kind: 'window', pollId: key.slice(2, at), windowStart };
}

const windowKey = (pollId: string, windowStart: number): string => `w/${pollId}/${windowStart}`;

const isWindowState = (v: unknown): v is WindowState => isRecord(v) && isCounts(v.counts) && isSafeInt(v.late);

// ---- dedupe store (stage 1): key pollId/voterId -> the voteId of the voter's counted vote (UTF-8) ----

export const dedupeStore = {
  key: voteKey,
  decodeKey(key: string): { pollId: string; voterId: string } {
    const slash = key.indexOf('/');
    if (slash <= 0)
      throw new ChangelogCorruptError(`dedupe store: key must be pollId/voterId, got ${JSON.stringify(key)}`);
    return { pollId: key.slice(0, slash), voterId: key.slice(slash + 1) };
  },
  /**
   * Where the pollId of a key read as bytes ends (the '/'; UTF-8 never has the byte 0x2f inside a character):
   * the restore reads pollId and voterId from the bytes without decoding them.
   */
  keySlashOf(key: Buffer): number {
    const slash = key.indexOf(0x2f);
    if (slash <= 0)
      throw new ChangelogCorruptError(
        `dedupe store: key must be pollId/voterId, got ${JSON.stringify(key.toString())}`,
      );
    return slash;
  },
  value: {
    encode: (voteId: string): Buffer => Buffer.from(voteId),
    decode: (value: Buffer): string => value.toString(),
  } satisfies ValueCodec<string>,
};

// ---- partial tally store (stage 1): t/<pollId> -> TallyRecord, w/<pollId>/<windowStart> -> WindowState,
// ---- watermark -> decimal event time (ms); the runtime's task position also lives in this changelog.

/** A poll's partial tally in one task, as its changelog keeps it. */
export interface PartialTallyRecord {
  version: number;
  totals: Record<string, number>;
  late: number;
  final: boolean;
  /** Absent in records written before the audit chain: then the chain starts at the genesis. */
  auditCount?: number;
  auditHead?: string;
}

export type PartialTallyKey =
  | { kind: 'tally'; pollId: string }
  | { kind: 'window'; pollId: string; windowStart: number }
  | { kind: 'watermark' };

const isPartialTallyRecord = (v: unknown): v is PartialTallyRecord =>
  isRecord(v) &&
  isSafeInt(v.version) &&
  isCounts(v.totals) &&
  isSafeInt(v.late) &&
  typeof v.final === 'boolean' &&
  (v.auditCount === undefined || isSafeInt(v.auditCount)) &&
  (v.auditHead === undefined || typeof v.auditHead === 'string');

export const partialTallyStore = {
  tallyKey: (pollId: string): string => `t/${pollId}`,
  windowKey,
  watermarkKey: 'watermark',
  decodeKey(raw: string): PartialTallyKey {
    const key = checkedKey('partial tally store', raw);
    if (key === 'watermark') return { kind: 'watermark' };
    if (key.startsWith('t/')) return { kind: 'tally', pollId: key.slice(2) };
    if (key.startsWith('w/')) return windowKeyOf('partial tally store', key);
    throw new ChangelogCorruptError(`partial tally store: unknown key ${JSON.stringify(key)}`);
  },
  tally: jsonCodec('partial tally store t/', isPartialTallyRecord),
  window: jsonCodec('partial tally store w/', isWindowState),
  watermark: {
    encode: (ms: number): Buffer => Buffer.from(String(ms)),
    decode(value: Buffer): number {
      const ms = Number(value.toString());
      if (!Number.isSafeInteger(ms)) throw new ChangelogCorruptError(`partial tally store: bad watermark ${value}`);
      return ms;
    },
  } satisfies ValueCodec<number>,
};

// ---- global tally store (stage 2): p/<pollId> -> GlobalPollRecord, w/<pollId>/<windowStart> -> per-source
// ---- WindowState; the runtime's task position also lives in this changelog.

/** The latest partial of one source (votes partition) for a poll. */
export interface SourceState {
  version: number;
  totals: Record<string, number>;
  late: number;
  watermark: number;
  final: boolean;
  /** The source's audit chain head (absent from partials written before the audit chain). */
  audit?: { count: number; head: string };
}

export interface GlobalPollRecord {
  /** Version of the last global TallyUpdate emitted (persisted: a restart never goes backwards). */
  version: number;
  finalEmitted: boolean;
  sources: Record<string, SourceState>;
}

export type GlobalTallyKey = { kind: 'poll'; pollId: string } | { kind: 'window'; pollId: string; windowStart: number };

const isSourceState = (v: unknown): v is SourceState =>
  isRecord(v) &&
  isSafeInt(v.version) &&
  isCounts(v.totals) &&
  isSafeInt(v.late) &&
  isSafeInt(v.watermark) &&
  typeof v.final === 'boolean' &&
  (v.audit === undefined || (isRecord(v.audit) && isSafeInt(v.audit.count) && typeof v.audit.head === 'string'));

const isGlobalPollRecord = (v: unknown): v is GlobalPollRecord =>
  isRecord(v) &&
  isSafeInt(v.version) &&
  typeof v.finalEmitted === 'boolean' &&
  isRecord(v.sources) &&
  Object.values(v.sources).every(isSourceState);

const isWindowsBySource = (v: unknown): v is Record<string, WindowState> =>
  isRecord(v) && Object.values(v).every(isWindowState);

export const globalTallyStore = {
  pollKey: (pollId: string): string => `p/${pollId}`,
  windowKey,
  decodeKey(raw: string): GlobalTallyKey {
    const key = checkedKey('global tally store', raw);
    if (key.startsWith('p/')) return { kind: 'poll', pollId: key.slice(2) };
    if (key.startsWith('w/')) return windowKeyOf('global tally store', key);
    throw new ChangelogCorruptError(`global tally store: unknown key ${JSON.stringify(key)}`);
  },
  poll: jsonCodec('global tally store p/', isGlobalPollRecord),
  window: jsonCodec('global tally store w/', isWindowsBySource),
};
