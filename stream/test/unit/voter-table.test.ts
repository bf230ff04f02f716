import { randomUUID } from 'node:crypto';
import test from 'ava';
import { fingerprintOf, VoterTable, voterTableSlotBytes } from '../../src/state/voter-table.ts';

test('a remembered voter is found with the voteId of the first vote; a second insert changes nothing', (t) => {
  const table = new VoterTable(4);
  const first = randomUUID();
  const fp = fingerprintOf('voter-1', { hi: 0, lo: 0 });
  t.true(table.insert(fp, first));
  t.false(table.insert(fingerprintOf('voter-1', { hi: 0, lo: 0 }), randomUUID()));
  const slot = table.find(fingerprintOf('voter-1', { hi: 0, lo: 0 }));
  t.true(slot >= 0);
  t.is(table.voteIdAt(slot), first);
  t.is(table.find(fingerprintOf('voter-2', { hi: 0, lo: 0 })), -1);
  t.is(table.size, 1);
});

test('100k voters survive growth and cost at most 64 bytes each', (t) => {
  const table = new VoterTable();
  const ids = new Map<string, string>();
  const fp = { hi: 0, lo: 0 };
  for (let i = 0; i < 100_000; i++) {
    const id = randomUUID();
    ids.set(`v${i}`, id);
    t.true(table.insert(fingerprintOf(`v${i}`, fp), id) || t.fail(`v${i} inserted twice`));
  }
  t.is(table.size, 100_000);
  for (const [voter, id] of ids) {
    const slot = table.find(fingerprintOf(voter, fp));
    if (slot < 0 || table.voteIdAt(slot) !== id) t.fail(`${voter} lost`);
  }
  t.true(table.bytes / table.size <= 64, `${table.bytes / table.size} bytes per voter`);
  t.is(voterTableSlotBytes, 24);
});
