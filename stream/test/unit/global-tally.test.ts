// The global tally processor (stage 2) on TaskDriver: partials of every votes partition summed into one
// TallyUpdate per poll, replays dropped, finality, invariants, and a restore from its changelog.
import { InvariantError } from '@votestream/runtime';
import type { TallyUpdate } from '@votestream/schemas';
import test from 'ava';
import { ManualClock, TaskDriver } from '../../src/testing/task-driver.ts';
import { globalTallyProcessor, globalTopics, serde } from './fixtures.ts';

const t0 = 1_700_000_000_000;
const encode = serde.encoder('TallyUpdate');
const decode = serde.decoder('TallyUpdate');

function partial(source: number, version: number, totals: Record<string, number>, final = false): TallyUpdate {
  let total = 0;
  for (const n of Object.values(totals)) total += n;
  return {
    pollId: 'p1',
    source,
    version,
    totals,
    total,
    lateVotes: 0,
    windows: [{ windowStart: t0, windowEnd: t0 + 1000, counts: totals, late: 0 }],
    watermark: t0,
    asOf: t0,
    final,
    audit: { heads: [{ source, count: total, head: `h${source}-${version}` }], signature: null, keyId: null },
  };
}
const input = (u: TallyUpdate) => ({ key: u.pollId, value: encode(u) });

async function setUp(sources = 2) {
  const clock = new ManualClock(t0);
  const driver = await TaskDriver.create(globalTallyProcessor(0, sources), { clock });
  const tallies = () => Promise.all(driver.output(globalTopics.tallies).map((r) => decode(r.value as Buffer)));
  return { clock, driver, tallies };
}

test('partials of every source are summed; a replayed or older partial is dropped', async (t) => {
  const { driver, tallies } = await setUp();
  await driver.pipe([input(partial(0, 10, { a: 2 })), input(partial(1, 10, { a: 1, b: 4 }))]);
  await driver.pipe([input(partial(0, 9, { a: 1 })), input(partial(0, 10, { a: 2 }))]);
  const out = await tallies();
  t.is(out.length, 1, 'the second batch changed nothing, so no new global tally');
  t.deepEqual(out[0]?.totals, { a: 3, b: 4 });
  t.is(out[0]?.total, 7);
  t.is(out[0]?.source, -1);
  t.is(out[0]?.final, false);
  t.deepEqual(out[0]?.windows[0]?.counts, { a: 3, b: 4 });
});

test('the global tally is final once every source sent a final partial; versions only increase', async (t) => {
  const { driver, clock, tallies } = await setUp();
  await driver.pipe([input(partial(0, 10, { a: 2 }, true))]);
  clock.advance(1);
  await driver.pipe([input(partial(1, 10, { b: 1 }, true))]);
  const out = await tallies();
  t.deepEqual(
    out.map((u) => u.final),
    [false, true],
  );
  t.true((out[1]?.version ?? 0) > (out[0]?.version ?? 0));
  t.deepEqual(
    out[1]?.audit?.heads.map((h) => h.source),
    [0, 1],
  );
});

test('a source whose totals go backwards breaks an invariant (fatal)', async (t) => {
  const { driver } = await setUp();
  await driver.pipe([input(partial(0, 10, { a: 2 }))]);
  await t.throwsAsync(driver.pipe([input(partial(0, 11, { a: 1 }))]), { instanceOf: InvariantError });
});

test('a task restored from the changelog keeps the sources and never reuses a version', async (t) => {
  const { driver, clock, tallies } = await setUp();
  await driver.pipe([input(partial(0, 10, { a: 2 })), input(partial(1, 10, { b: 1 }))]);
  const before = (await tallies())[0];
  await driver.close();
  const restored = await TaskDriver.create(globalTallyProcessor(0, 2), { clock, log: driver.log() });
  t.is(restored.position, 2n);
  await restored.pipe([input(partial(1, 11, { b: 3 }))]);
  const after = await decode(restored.output(globalTopics.tallies).at(-1)?.value as Buffer);
  t.deepEqual(after.totals, { a: 2, b: 3 });
  t.true(after.version > (before?.version ?? Number.MAX_SAFE_INTEGER), 'the same clock, yet a newer version');
});
