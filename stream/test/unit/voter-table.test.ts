import { hash, randomBytes, randomUUID } from 'node:crypto';
import test from 'ava';
import {
  fingerprintOf,
  fingerprintOfBytes,
  VoterTable,
  voterTableEntryBytes,
  voterTableSlotBytes,
} from '../../src/state/voter-table.ts';

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

test('100k voters survive growth and cost at most 32 bytes each', (t) => {
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
  t.true(table.bytes / table.size <= 32, `${table.bytes / table.size} bytes per voter`);
  t.is(voterTableEntryBytes, 24);
  t.is(voterTableSlotBytes, 4);
});

test('from 100k to 400k voters, every size costs at most 32 bytes per voter (the index grows 1.25x, not 2x)', (t) => {
  const table = new VoterTable();
  const fp = { hi: 0, lo: 0 };
  const id = '00000000-0000-4000-8000-000000000000';
  let worst = 0;
  for (let i = 0; i < 400_000; i++) {
    table.insert(fingerprintOf(`v${i}`, fp), id);
    if (table.size >= 100_000) worst = Math.max(worst, table.bytes / table.size);
  }
  t.is(table.size, 400_000);
  t.true(worst <= 32, `${worst} bytes per voter`);
});

test('voters whose fingerprints share the home slot and the tag are told apart by the whole fingerprint', (t) => {
  const table = new VoterTable(8);
  const a = randomUUID();
  const b = randomUUID();
  t.true(table.insert({ hi: 0xfc000001, lo: 3 }, a));
  t.true(table.insert({ hi: 0xfc000002, lo: 3 }, b));
  t.true(table.insert({ hi: 0xfc000001, lo: 11 }, b));
  t.false(table.insert({ hi: 0xfc000002, lo: 3 }, a));
  t.is(table.voteIdAt(table.find({ hi: 0xfc000001, lo: 3 })), a);
  t.is(table.voteIdAt(table.find({ hi: 0xfc000002, lo: 3 })), b);
  t.is(table.find({ hi: 0xfc000003, lo: 3 }), -1);
  t.is(table.size, 3);
});

test('a voteId that is no UUID is refused (InvariantError) and leaves the table as it was; any case is read', (t) => {
  const table = new VoterTable(4);
  const fp = fingerprintOf('voter-1', { hi: 0, lo: 0 });
  for (const bad of ['not-a-uuid', '0000000g-0000-4000-8000-000000000000', '00000000-0000-4000-8000-0000000000000', ''])
    t.throws(() => table.insert(fp, bad), { message: /voteId must be a UUID/ });
  t.is(table.size, 0);
  t.is(table.find(fp), -1);
  t.true(table.insert(fp, 'ABCDEF01-2345-4789-8ABC-DEF012345678'));
  t.is(table.voteIdAt(table.find(fp)), 'abcdef01-2345-4789-8abc-def012345678');
});

test('a voteId given as the bytes of its text is stored as the text; a voter id hashed from its UTF-8 bytes has its fingerprint', (t) => {
  const table = new VoterTable(4);
  for (const voter of ['voter-1', 'vötér-ü', '投票者']) {
    const fromText = fingerprintOf(voter, { hi: 0, lo: 0 });
    const bytes = Buffer.from(`xx${voter}`);
    t.deepEqual(fingerprintOfBytes(bytes, 2, bytes.length, { hi: 0, lo: 0 }), fromText);
    const id = randomUUID().toUpperCase();
    t.true(table.insert(fingerprintOfBytes(bytes, 2, bytes.length, { hi: 0, lo: 0 }), Buffer.from(id)));
    t.is(table.voteIdAt(table.find(fromText)), id.toLowerCase());
  }
  const fp = fingerprintOf('voter-2', { hi: 0, lo: 0 });
  for (const bad of ['0000000g-0000-4000-8000-000000000000', '00000000-0000-4000-8000-0000000000000', ''])
    t.throws(() => table.insert(fp, Buffer.from(bad)), { message: /voteId must be a UUID/ });
  t.is(table.size, 3);
  t.is(table.find(fp), -1);
});

test('a fingerprint is the first 64 bits of SHA-1 of the id, as node:crypto computes it, for every length and text', (t) => {
  const expected = (data: string | Buffer) => {
    const d = hash('sha1', data, 'buffer') as unknown as Buffer;
    const fp = { hi: d.readUInt32LE(0), lo: d.readUInt32LE(4) };
    return fp.hi === 0 && fp.lo === 0 ? { hi: 0, lo: 1 } : fp;
  };
  const alphabet = ['a', 'Z', '9', '-', '/', 'é', 'ü', '投', '😀', '\ud800', '\udfff', '\u0000'];
  let mismatches = 0;
  for (let len = 0; len <= 300; len++) {
    for (let k = 0; k < 4; k++) {
      const ascii = randomBytes(len).toString('base64').slice(0, len);
      let text = '';
      for (let i = 0; i < len; i++) text += alphabet[(i * 7 + k * 13 + len) % alphabet.length];
      for (const id of [ascii, text]) {
        const want = expected(id);
        const got = fingerprintOf(id, { hi: 0, lo: 0 });
        const bytes = Buffer.concat([randomBytes(k), Buffer.from(id), randomBytes(3)]);
        const fromBytes = fingerprintOfBytes(bytes, k, bytes.length - 3, { hi: 0, lo: 0 });
        if (got.hi !== want.hi || got.lo !== want.lo || fromBytes.hi !== want.hi || fromBytes.lo !== want.lo)
          mismatches++;
      }
    }
  }
  t.is(mismatches, 0);
  // A known vector: SHA-1("abc") = a9993e36 4706816a ...
  t.deepEqual(fingerprintOf('abc', { hi: 0, lo: 0 }), { hi: 0x363e99a9, lo: 0x6a810647 });
});
