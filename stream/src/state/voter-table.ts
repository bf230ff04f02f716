import { invariant } from '@votestream/runtime';

/**
 * The dedupe state store's in-memory table for one poll in one task: "has this voter already voted, and with
 * which vote?". Flat typed arrays, so memory is bounded and the JS Map entry limit (~16.7M) never applies:
 *
 * - entries, in insertion order, in chunks of `voterTableChunkEntries`: per voter a 64-bit fingerprint of the
 *   voter id (two uint32) and the 16 bytes of the first vote's voteId (a UUID), for the DUPLICATE decision:
 *   24 bytes per voter (`voterTableEntryBytes`); entries never move, so a grow copies none of them;
 * - an index (open addressing, linear probing) of uint32 slots, 4 bytes each (`voterTableSlotBytes`): 0 is an
 *   empty slot, else the entry number + 1 in the low 26 bits and 6 more bits of the fingerprint as a tag, so a
 *   probe past another voter's slot rarely reads that voter's entry. The home slot is `fingerprint.lo % slots`.
 *
 * The index grows by 1.25× (not 2×) when more than `voterTableLoadFactorMax` (0.8) of its slots are used, so it
 * is 0.64..0.8 full: 5..6.25 index bytes per voter, i.e. 29..30.3 bytes per voter plus the unused part of the last
 * chunk (at most 96 KiB per table; < 1 byte per voter from 100k voters on). Before issue 14 it was 24-byte slots
 * at 3/8..3/4 load: 32..64 bytes per voter (50.3 at 1M voters).
 *
 * Collision: two different voters with the same fingerprint in the same poll and the same task would make the
 * second look like a duplicate. The fingerprint is the first 64 bits of SHA-1(voterId); for n voters of one poll
 * in one task the probability of any collision is about n^2 / 2^65 (1e7 voters: 2.7e-6).
 */
export const voterTableLoadFactorMax = 0.8;
const growthFactor = 1.25;
/** Bytes per remembered voter in the entries (fingerprint 8 + voteId 16). */
export const voterTableEntryBytes = 24;
/** Bytes per index slot. */
export const voterTableSlotBytes = 4;
/** Entries per chunk (a chunk is 96 KiB). */
export const voterTableChunkEntries = 4096;
const entryBits = 26;
const entryMask = 2 ** entryBits - 1;
/** Most voters one poll may have in one task (2^26 - 1, 1.5 GiB of entries); beyond it the task crashes loudly. */
export const voterTableEntriesMax = entryMask - 1;
const voteIdBytes = 16;
const chunkShift = 12;
const chunkMask = voterTableChunkEntries - 1;
invariant(2 ** chunkShift === voterTableChunkEntries, 'chunkShift matches voterTableChunkEntries');

/** Fingerprint of a voter id: two uint32 halves of a 64-bit hash, never both zero. */
export interface Fingerprint {
  hi: number;
  lo: number;
}

/** Scratch of the SHA-1 below: the padded message (grows for a long id) and the message schedule. */
let sha1Block = new Uint8Array(256);
const sha1Words = new Int32Array(80);
const utf8 = new TextEncoder();
const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
const byteSwap = (x: number): number => ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24)) >>> 0;

/**
 * The fingerprint (first 64 bits of SHA-1, as two little-endian uint32) of the message in `sha1Block[0, n)`,
 * computed in JS without allocating: node:crypto's one-shot hash costs a native call and a digest Buffer per voter
 * (~1 µs; the largest item after KafkaJS in the profile of a 500k-record restore). Same result (unit test against
 * node:crypto).
 */
function sha1Fingerprint(n: number, into: Fingerprint): Fingerprint {
  const padded = ((n + 8) >>> 6) * 64 + 64;
  const m = sha1Block;
  m[n] = 0x80;
  m.fill(0, n + 1, padded - 4);
  const bits = n * 8;
  m[padded - 4] = bits >>> 24;
  m[padded - 3] = (bits >>> 16) & 0xff;
  m[padded - 2] = (bits >>> 8) & 0xff;
  m[padded - 1] = bits & 0xff;
  const w = sha1Words;
  let h0 = 0x67452301;
  let h1 = 0xefcdab89 | 0;
  let h2 = 0x98badcfe | 0;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  for (let at = 0; at < padded; at += 64) {
    for (let t = 0; t < 16; t++) {
      const i = at + t * 4;
      w[t] =
        ((m[i] as number) << 24) | ((m[i + 1] as number) << 16) | ((m[i + 2] as number) << 8) | (m[i + 3] as number);
    }
    for (let t = 16; t < 80; t++)
      w[t] = rotl((w[t - 3] as number) ^ (w[t - 8] as number) ^ (w[t - 14] as number) ^ (w[t - 16] as number), 1);
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let t = 0; t < 80; t++) {
      let f: number;
      let k: number;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const temp = (rotl(a, 5) + f + e + k + (w[t] as number)) | 0;
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = temp;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  // digest bytes 0..3 and 4..7 (big-endian words h0, h1) read as little-endian uint32
  into.hi = byteSwap(h0);
  into.lo = byteSwap(h1);
  if (into.hi === 0 && into.lo === 0) into.lo = 1;
  return into;
}

/** Room in the scratch for a message of `n` bytes and its padding. */
function sha1Room(n: number): void {
  if (n + 72 > sha1Block.length) sha1Block = new Uint8Array(2 * (n + 72));
}

/** Fingerprint of a voter id (hashed as its UTF-8 bytes). */
export function fingerprintOf(voterId: string, into: Fingerprint): Fingerprint {
  sha1Room(voterId.length * 3);
  const m = sha1Block;
  for (let i = 0; i < voterId.length; i++) {
    const c = voterId.charCodeAt(i);
    if (c >= 0x80) return sha1Fingerprint(utf8.encodeInto(voterId, m).written, into); // not ASCII
    m[i] = c;
  }
  return sha1Fingerprint(voterId.length, into);
}

/** Fingerprint of a voter id given as its UTF-8 bytes `bytes[start, end)` (the restore reads keys as bytes). */
export function fingerprintOfBytes(bytes: Uint8Array, start: number, end: number, into: Fingerprint): Fingerprint {
  const n = end - start;
  sha1Room(n);
  const m = sha1Block;
  for (let i = 0; i < n; i++) m[i] = bytes[start + i] as number;
  return sha1Fingerprint(n, into);
}

/** Value of a hex digit's char code, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // a-f, A-F
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** The char code at `i` of a text, or the byte at `i` of its ASCII bytes. */
const codeAt = (s: string | Uint8Array, i: number): number =>
  typeof s === 'string' ? s.charCodeAt(i) : (s[i] as number);

/**
 * Writes the 16 bytes of a UUID's text (8-4-4-4-12 hex digits, any case; a string, or its ASCII bytes as a
 * changelog holds them) at `at`, without allocating (the profile of the drain showed the regex test and the hex
 * Buffer of every insert; the profile of a restore, the string of every value). False if it is no UUID.
 */
function writeUuid(uuid: string | Uint8Array, into: Uint8Array, at: number): boolean {
  if (uuid.length !== 36) return false;
  let out = at;
  for (let i = 0; i < 36; ) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (codeAt(uuid, i) !== 45) return false; // '-'
      i++;
      continue;
    }
    const hi = hexValue(codeAt(uuid, i));
    const lo = hexValue(codeAt(uuid, i + 1));
    if (hi < 0 || lo < 0) return false;
    into[out++] = (hi << 4) | lo;
    i += 2;
  }
  return true;
}

const uuidScratch = new Uint8Array(voteIdBytes);

/** Whether `voteId` is a UUID in its 36-character text form (what `VoterTable.insert` accepts). */
export function isVoteId(voteId: string | Uint8Array): boolean {
  return writeUuid(voteId, uuidScratch, 0);
}

/** The index slot's tag: the top 6 bits of fingerprint.hi, in the slot's top 6 bits. */
const tagOf = (hi: number): number => ((hi >>> entryBits) << entryBits) >>> 0;

export class VoterTable {
  private index: Uint32Array;
  /** Per chunk: fingerprints (hi, lo per entry). */
  private readonly fps: Uint32Array[] = [];
  /** Per chunk: voteIds (16 bytes per entry). */
  private readonly ids: Uint8Array[] = [];
  private used = 0;

  constructor(initialSlots = 1024) {
    invariant(Number.isSafeInteger(initialSlots) && initialSlots >= 2, 'initialSlots must be an integer >= 2');
    this.index = new Uint32Array(initialSlots);
  }

  /** Remembered voters. */
  get size(): number {
    return this.used;
  }

  /** Bytes of the typed arrays (the whole memory of the table but a few object headers). */
  get bytes(): number {
    let n = this.index.byteLength;
    for (let c = 0; c < this.fps.length; c++)
      n += (this.fps[c] as Uint32Array).byteLength + (this.ids[c] as Uint8Array).byteLength;
    return n;
  }

  /** Entry of the voter, or -1 if not remembered. */
  find(fp: Fingerprint): number {
    const s = this.index[this.probe(fp)] as number;
    return s === 0 ? -1 : (s & entryMask) - 1;
  }

  /** The voter's slot if it is remembered, else the first empty slot from its home slot on (where it goes). */
  private probe(fp: Fingerprint): number {
    const index = this.index;
    const slots = index.length;
    const tag = tagOf(fp.hi);
    let slot = fp.lo % slots;
    for (;;) {
      const s = index[slot] as number;
      if (s === 0) return slot;
      if ((s & ~entryMask) >>> 0 === tag) {
        const entry = (s & entryMask) - 1;
        const f = this.fps[entry >>> chunkShift] as Uint32Array;
        const at = (entry & chunkMask) * 2;
        if (f[at] === fp.hi && f[at + 1] === fp.lo) return slot;
      }
      slot = slot + 1 === slots ? 0 : slot + 1;
    }
  }

  /** The voteId remembered in an entry returned by find(). */
  voteIdAt(entry: number): string {
    invariant(entry >= 0 && entry < this.used, `no entry ${entry}`);
    const ids = this.ids[entry >>> chunkShift] as Uint8Array;
    const hex = Buffer.from(ids.buffer, ids.byteOffset + (entry & chunkMask) * voteIdBytes, voteIdBytes).toString(
      'hex',
    );
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /**
   * Remembers a voter's first vote (its voteId as text, or as the text's bytes). Returns false (and changes
   * nothing) if the voter is already remembered.
   */
  insert(fp: Fingerprint, voteId: string | Uint8Array): boolean {
    if (this.used + 1 > this.index.length * voterTableLoadFactorMax) this.grow();
    const slot = this.probe(fp);
    if (this.index[slot] !== 0) return false;
    if (this.used >= voterTableEntriesMax)
      invariant(false, `voter table exceeds voterTableEntriesMax (${voterTableEntriesMax})`);
    const entry = this.used;
    const chunk = entry >>> chunkShift;
    if (chunk === this.fps.length) {
      this.fps.push(new Uint32Array(voterTableChunkEntries * 2));
      this.ids.push(new Uint8Array(voterTableChunkEntries * voteIdBytes));
    }
    const at = entry & chunkMask;
    const f = this.fps[chunk] as Uint32Array;
    f[at * 2] = fp.hi;
    f[at * 2 + 1] = fp.lo;
    // The entry is not in use until the index points at it: a bad voteId leaves the table as it was.
    if (!writeUuid(voteId, this.ids[chunk] as Uint8Array, at * voteIdBytes))
      invariant(false, `voteId must be a UUID, got ${JSON.stringify(Buffer.from(voteId).toString())}`);
    this.index[slot] = (tagOf(fp.hi) | (entry + 1)) >>> 0;
    this.used++;
    return true;
  }

  /** Puts an entry into its first free slot from its home slot on. */
  private place(index: Uint32Array, hi: number, lo: number, entry: number): void {
    const slots = index.length;
    let slot = lo % slots;
    while (index[slot] !== 0) slot = slot + 1 === slots ? 0 : slot + 1;
    index[slot] = (tagOf(hi) | (entry + 1)) >>> 0;
  }

  /** A new index 1.25× larger, rebuilt from the entries (which stay where they are). */
  private grow(): void {
    const index = new Uint32Array(Math.ceil(this.index.length * growthFactor) + 1);
    for (let entry = 0; entry < this.used; entry++) {
      const f = this.fps[entry >>> chunkShift] as Uint32Array;
      const at = (entry & chunkMask) * 2;
      this.place(index, f[at] as number, f[at + 1] as number, entry);
    }
    this.index = index;
  }
}
