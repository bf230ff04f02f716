import { createHash, createPublicKey, hash, type KeyObject, sign, verify } from 'node:crypto';
import { invariant } from '@votestream/runtime';
import type { AuditChainHead, VoteDecision } from '@votestream/schemas';

/**
 * The tamper-evident audit trail of a poll (docs/trust.md section 2). Each votes partition's dedupe task chains
 * the poll's decisions in the order it committed them:
 *   link_0 = SHA-256("votestream-audit-v1|" pollId "|" partition)
 *   link_n = SHA-256(link_{n-1} || SHA-256(leaf_n)),  leaf = voteId|optionId|outcome|reason|countedVoteId
 * A leaf carries no voter id, so a poll's chain can be published. The final global tally carries every
 * partition's head and an Ed25519 signature over the checkpoint (pollId, version, totals, heads).
 */

export const auditChainVersion = 'votestream-audit-v1';

/** What a link commits to of one decision: no voter identity. */
export interface AuditLeaf {
  voteId: string;
  optionId: string;
  outcome: 'COUNTED' | 'REJECTED';
  reason: string | null;
  countedVoteId: string | null;
}

export function leafOf(d: VoteDecision): AuditLeaf {
  return {
    voteId: d.vote.voteId,
    optionId: d.vote.optionId,
    outcome: d.outcome,
    reason: d.reason,
    countedVoteId: d.countedVoteId,
  };
}

export function genesisOf(pollId: string, partition: number): string {
  return createHash('sha256').update(`${auditChainVersion}|${pollId}|${partition}`).digest('hex');
}

/** The next link after `prev` (hex) for `leaf`. */
export function linkOf(prev: string, leaf: AuditLeaf): string {
  // One-shot hashes into a reused buffer (prev || leaf hash): no Hash objects per decision.
  // A link read back from state is checked: a short or non-hex one would leave the previous call's bytes in place.
  invariant(
    prev.length === 64 && linkInput.write(prev, 0, 32, 'hex') === 32,
    `an audit link is 64 hex digits, got ${JSON.stringify(prev.slice(0, 80))}`,
  );
  hash(
    'sha256',
    `${leaf.voteId}|${leaf.optionId}|${leaf.outcome}|${leaf.reason ?? ''}|${leaf.countedVoteId ?? ''}`,
    'buffer',
  ).copy(linkInput, 32);
  return hash('sha256', linkInput, 'hex');
}
/** The 64 bytes a link hashes (see linkOf; one per process: linkOf is synchronous). */
const linkInput = Buffer.alloc(64);

/** The bytes a checkpoint signature covers: canonical JSON (sorted option keys, heads by source). */
export function checkpointBytes(
  pollId: string,
  version: number,
  totals: Record<string, number>,
  heads: readonly AuditChainHead[],
): Buffer {
  const sortedTotals = Object.fromEntries(Object.entries(totals).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const sortedHeads = [...heads]
    .sort((a, b) => a.source - b.source)
    .map((h) => ({ source: h.source, count: h.count, head: h.head }));
  return Buffer.from(
    JSON.stringify({ v: auditChainVersion, pollId, version, totals: sortedTotals, heads: sortedHeads }),
    'utf8',
  );
}

export function signCheckpoint(privateKey: KeyObject, bytes: Buffer): string {
  return sign(null, bytes, privateKey).toString('base64url');
}

export function checkpointSignatureValid(publicKeyPem: string | KeyObject, bytes: Buffer, signature: string): boolean {
  const key = typeof publicKeyPem === 'string' ? createPublicKey(publicKeyPem) : publicKeyPem;
  return verify(null, bytes, key, Buffer.from(signature, 'base64url'));
}

/** One partition of an export: its leaves in committed order, with each link as the chain computed it. */
export interface ExportedChain {
  source: number;
  links: Array<{ leaf: AuditLeaf; link: string }>;
}

export type ChainFault =
  | { kind: 'link-mismatch'; source: number; position: number; voteId: string }
  | { kind: 'head-mismatch'; source: number; expected: string; computed: string; count: number }
  | { kind: 'count-mismatch'; source: number; expected: number; exported: number }
  | { kind: 'missing-source'; source: number }
  | { kind: 'totals-mismatch'; option: string; checkpoint: number; chained: number }
  | { kind: 'bad-signature' }
  | { kind: 'unsigned' };

/**
 * Checks an export against its checkpoint: every partition's links recomputed from the genesis (the first
 * position whose recomputed link differs from the exported one is named: a changed, dropped or reordered
 * decision), each head and count equal to the checkpoint's, the counted leaves summing to the checkpoint's
 * totals, and the signature. A rewrite that also recomputes every later exported link is still caught by the
 * signed head (named as a head mismatch: the position is then not known).
 */
export function verifyExport(input: {
  pollId: string;
  version: number;
  totals: Record<string, number>;
  heads: readonly AuditChainHead[];
  signature: string | null;
  chains: readonly ExportedChain[];
  publicKey: string | KeyObject | null;
}): ChainFault[] {
  const faults: ChainFault[] = [];
  const chained: Record<string, number> = {};
  const bySource = new Map(input.chains.map((c) => [c.source, c]));
  for (const h of input.heads) {
    const chain = bySource.get(h.source);
    if (!chain) {
      faults.push({ kind: 'missing-source', source: h.source });
      continue;
    }
    if (chain.links.length !== h.count)
      faults.push({ kind: 'count-mismatch', source: h.source, expected: h.count, exported: chain.links.length });
    let link = genesisOf(input.pollId, h.source);
    let reported = false;
    for (const [i, { leaf, link: exported }] of chain.links.entries()) {
      link = linkOf(link, leaf);
      if (link !== exported && !reported) {
        faults.push({ kind: 'link-mismatch', source: h.source, position: i, voteId: leaf.voteId });
        reported = true;
      }
      if (leaf.outcome === 'COUNTED') chained[leaf.optionId] = (chained[leaf.optionId] ?? 0) + 1;
    }
    if (link !== h.head)
      faults.push({
        kind: 'head-mismatch',
        source: h.source,
        expected: h.head,
        computed: link,
        count: chain.links.length,
      });
  }
  for (const option of new Set([...Object.keys(input.totals), ...Object.keys(chained)])) {
    const [a, b] = [input.totals[option] ?? 0, chained[option] ?? 0];
    if (a !== b) faults.push({ kind: 'totals-mismatch', option, checkpoint: a, chained: b });
  }
  if (input.signature === null) faults.push({ kind: 'unsigned' });
  else if (
    input.publicKey === null ||
    !checkpointSignatureValid(
      input.publicKey,
      checkpointBytes(input.pollId, input.version, input.totals, input.heads),
      input.signature,
    )
  )
    faults.push({ kind: 'bad-signature' });
  return faults;
}
