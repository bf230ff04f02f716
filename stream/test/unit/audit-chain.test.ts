// The audit chain and its verification without a broker: a signed checkpoint over three partitions' chains, and
// each kind of tampering with an export found and located.
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import test from 'ava';
import {
  type AuditLeaf,
  checkpointBytes,
  type ExportedChain,
  genesisOf,
  linkOf,
  signCheckpoint,
  verifyExport,
} from '../../src/audit/chain.ts';

const pollId = 'final-2026';
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519').publicKey;

function leaf(optionId: string, outcome: 'COUNTED' | 'REJECTED' = 'COUNTED'): AuditLeaf {
  return {
    voteId: randomUUID(),
    optionId,
    outcome,
    reason: outcome === 'COUNTED' ? null : 'DUPLICATE',
    countedVoteId: null,
  };
}
function chain(source: number, leaves: AuditLeaf[]): ExportedChain {
  let link = genesisOf(pollId, source);
  return {
    source,
    links: leaves.map((l) => {
      link = linkOf(link, l);
      return { leaf: l, link };
    }),
  };
}
function signed(chains: ExportedChain[]) {
  const totals: Record<string, number> = {};
  for (const c of chains)
    for (const { leaf: l } of c.links) if (l.outcome === 'COUNTED') totals[l.optionId] = (totals[l.optionId] ?? 0) + 1;
  const heads = chains.map((c) => ({
    source: c.source,
    count: c.links.length,
    head: c.links.at(-1)?.link ?? genesisOf(pollId, c.source),
  }));
  const version = 1_780_000_000_000_000;
  return {
    pollId,
    version,
    totals,
    heads,
    signature: signCheckpoint(privateKey, checkpointBytes(pollId, version, totals, heads)),
  };
}
const sample = () => [
  chain(0, [leaf('a'), leaf('b'), leaf('a', 'REJECTED'), leaf('a')]),
  chain(1, [leaf('b'), leaf('b')]),
  chain(2, []),
];
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

test('a link is SHA-256(previous link || SHA-256(voteId|optionId|outcome|reason|countedVoteId)), as documented', (t) => {
  const spec = (prev: string, l: AuditLeaf) =>
    createHash('sha256')
      .update(Buffer.from(prev, 'hex'))
      .update(
        createHash('sha256')
          .update(`${l.voteId}|${l.optionId}|${l.outcome}|${l.reason ?? ''}|${l.countedVoteId ?? ''}`)
          .digest(),
      )
      .digest('hex');
  let link = genesisOf(pollId, 3);
  let expected = link;
  const counted = randomUUID();
  const leaves: AuditLeaf[] = [
    leaf('a'),
    { voteId: randomUUID(), optionId: 'é€😀', outcome: 'REJECTED', reason: 'DUPLICATE', countedVoteId: counted },
    { voteId: randomUUID(), optionId: 'b', outcome: 'REJECTED', reason: 'POLL_CLOSED', countedVoteId: null },
    leaf('b'),
  ];
  for (const l of leaves) {
    link = linkOf(link, l);
    expected = spec(expected, l);
    t.is(link, expected);
  }
});

test('a previous link that is not 64 hex digits is refused, not hashed with stale bytes', (t) => {
  const l = leaf('a');
  const good = linkOf(genesisOf(pollId, 1), l);
  for (const bad of ['', good.slice(0, 62), `${good.slice(0, 62)}zz`, `${good}00`]) {
    t.throws(() => linkOf(bad, l), { message: /an audit link is 64 hex digits/ });
  }
  // the refused calls left nothing behind: the same inputs give the same link as before
  t.is(linkOf(genesisOf(pollId, 1), l), good);
});

test('an untouched export verifies: chains, heads, counts, totals and signature', (t) => {
  const chains = sample();
  t.deepEqual(verifyExport({ ...signed(chains), chains, publicKey }), []);
});

test('a changed decision is found at its partition and position', (t) => {
  const chains = sample();
  const cp = signed(chains);
  const tampered = clone(chains);
  tampered[0]!.links[1]!.leaf.optionId = 'a';
  t.deepEqual(
    verifyExport({ ...cp, chains: tampered, publicKey }).map((f) => [f.kind, 'position' in f ? f.position : undefined]),
    [
      ['link-mismatch', 1],
      ['head-mismatch', undefined],
      ['totals-mismatch', undefined],
      ['totals-mismatch', undefined],
    ],
  );
});

test('a dropped decision is found at its position, and the count no longer matches', (t) => {
  const chains = sample();
  const cp = signed(chains);
  const tampered = clone(chains);
  tampered[0]!.links.splice(2, 1);
  const faults = verifyExport({ ...cp, chains: tampered, publicKey });
  t.deepEqual(faults[0], { kind: 'count-mismatch', source: 0, expected: 4, exported: 3 });
  t.like(faults[1], { kind: 'link-mismatch', source: 0, position: 2 });
});

test('two decisions swapped are found at the first of them', (t) => {
  const chains = sample();
  const cp = signed(chains);
  const tampered = clone(chains);
  const [x, y] = [tampered[1]!.links[0]!, tampered[1]!.links[1]!];
  tampered[1]!.links[0] = y;
  tampered[1]!.links[1] = x;
  t.like(verifyExport({ ...cp, chains: tampered, publicKey })[0], { kind: 'link-mismatch', source: 1, position: 0 });
});

test('a rewrite that recomputes every later link is still caught by the signed head', (t) => {
  const chains = sample();
  const cp = signed(chains);
  const leaves = chains[0]!.links.map((l) => l.leaf);
  leaves[3] = { ...leaves[3]!, optionId: 'b' };
  const rewritten = [chain(0, leaves), chains[1]!, chains[2]!];
  t.deepEqual(
    verifyExport({ ...cp, chains: rewritten, publicKey }).map((f) => f.kind),
    ['head-mismatch', 'totals-mismatch', 'totals-mismatch'],
  );
});

test('a checkpoint signed by another key, forged totals, or no signature fail', (t) => {
  const chains = sample();
  const cp = signed(chains);
  t.deepEqual(verifyExport({ ...cp, chains, publicKey: otherKey }), [{ kind: 'bad-signature' }]);
  t.deepEqual(
    verifyExport({ ...cp, totals: { ...cp.totals, a: 9 }, chains, publicKey }).map((f) => f.kind),
    ['totals-mismatch', 'bad-signature'],
  );
  t.deepEqual(verifyExport({ ...cp, signature: null, chains, publicKey }), [{ kind: 'unsigned' }]);
});
