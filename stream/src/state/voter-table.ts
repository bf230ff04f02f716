import { hash } from 'node:crypto';
import { invariant } from '@votestream/runtime';

/**
 * The dedupe state store's in-memory table for one poll in one task: "has this voter already voted, and with
 * which vote?". Open addressing with linear probing over typed arrays, so memory is flat and bounded and the
 * JS Map entry limit (~16.7M) never applies:
 *
 * - a 64-bit fingerprint of the voter id per slot (two uint32 in `fingerprints`; 0/0 marks an empty slot),
 * - the 16 bytes of the first vote's voteId (a UUID) per slot (`voteIds`), for the DUPLICATE decision.
 *
 * 24 bytes per slot; the table doubles when more than `loadFactorMax` of its slots are used, so it is always
 * between 3/8 and 3/4 full: 32 to 64 bytes per remembered voter.
 *
 * Collision: two different voters with the same fingerprint in the same poll and the same task would make the
 * second look like a duplicate. The fingerprint is the first 64 bits of SHA-1(voterId); for n voters of one poll
 * in one task the probability of any collision is about n^2 / 2^65 (1e7 voters: 2.7e-6).
 */
export const voterTableLoadFactorMax = 0.75;
/** Largest table (slots) one poll may have in one task: 2^27 slots = 3 GiB. Beyond it the task crashes loudly. */
export const voterTableSlotsMax = 2 ** 27;
export const voterTableSlotBytes = 24;
const voteIdBytes = 16;

/** Fingerprint of a voter id: two uint32 halves of a 64-bit hash, never both zero. */
export interface Fingerprint {
  hi: number;
  lo: number;
}

export function fingerprintOf(voterId: string, into: Fingerprint): Fingerprint {
  const digest = hash('sha1', voterId, 'buffer') as unknown as Buffer;
  into.hi = digest.readUInt32LE(0);
  into.lo = digest.readUInt32LE(4);
  if (into.hi === 0 && into.lo === 0) into.lo = 1;
  return into;
}

const hexPairs = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class VoterTable {
  private fingerprints: Uint32Array;
  private voteIds: Uint8Array;
  private mask: number;
  private used = 0;

  constructor(initialSlots = 1024) {
    invariant(initialSlots > 0 && (initialSlots & (initialSlots - 1)) === 0, 'initialSlots must be a power of two');
    this.fingerprints = new Uint32Array(initialSlots * 2);
    this.voteIds = new Uint8Array(initialSlots * voteIdBytes);
    this.mask = initialSlots - 1;
  }

  /** Remembered voters. */
  get size(): number {
    return this.used;
  }

  /** Bytes of the typed arrays (the whole memory of the table but a few object headers). */
  get bytes(): number {
    return this.fingerprints.byteLength + this.voteIds.byteLength;
  }

  /** Slot of the voter, or -1 if not remembered. */
  find(fp: Fingerprint): number {
    const f = this.fingerprints;
    let slot = fp.lo & this.mask;
    for (;;) {
      const hi = f[slot * 2] as number;
      const lo = f[slot * 2 + 1] as number;
      if (hi === 0 && lo === 0) return -1;
      if (hi === fp.hi && lo === fp.lo) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  /** The voteId remembered in a slot returned by find(). */
  voteIdAt(slot: number): string {
    const hex = Buffer.from(this.voteIds.buffer, this.voteIds.byteOffset + slot * voteIdBytes, voteIdBytes).toString(
      'hex',
    );
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** Remembers a voter's first vote. Returns false (and changes nothing) if the voter is already remembered. */
  insert(fp: Fingerprint, voteId: string): boolean {
    invariant(hexPairs.test(voteId), `voteId must be a UUID, got ${JSON.stringify(voteId)}`);
    if ((this.used + 1) / (this.mask + 1) > voterTableLoadFactorMax) this.grow();
    const f = this.fingerprints;
    let slot = fp.lo & this.mask;
    for (;;) {
      const hi = f[slot * 2] as number;
      const lo = f[slot * 2 + 1] as number;
      if (hi === 0 && lo === 0) break;
      if (hi === fp.hi && lo === fp.lo) return false;
      slot = (slot + 1) & this.mask;
    }
    f[slot * 2] = fp.hi;
    f[slot * 2 + 1] = fp.lo;
    this.voteIds.set(Buffer.from(voteId.replaceAll('-', ''), 'hex'), slot * voteIdBytes);
    this.used++;
    return true;
  }

  private grow(): void {
    const slots = (this.mask + 1) * 2;
    invariant(slots <= voterTableSlotsMax, `voter table exceeds voterTableSlotsMax (${voterTableSlotsMax} slots)`);
    const oldF = this.fingerprints;
    const oldIds = this.voteIds;
    this.fingerprints = new Uint32Array(slots * 2);
    this.voteIds = new Uint8Array(slots * voteIdBytes);
    this.mask = slots - 1;
    const f = this.fingerprints;
    for (let old = 0; old < oldF.length / 2; old++) {
      const hi = oldF[old * 2] as number;
      const lo = oldF[old * 2 + 1] as number;
      if (hi === 0 && lo === 0) continue;
      let slot = lo & this.mask;
      while (f[slot * 2] !== 0 || f[slot * 2 + 1] !== 0) slot = (slot + 1) & this.mask;
      f[slot * 2] = hi;
      f[slot * 2 + 1] = lo;
      this.voteIds.set(oldIds.subarray(old * voteIdBytes, old * voteIdBytes + voteIdBytes), slot * voteIdBytes);
    }
  }
}
