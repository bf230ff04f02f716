// The poll catalog's rules, table-driven and pure (no stack): the effective close time, the status, the merge
// rule every catalog (ingest, stream) applies to the polls topic, and the size cap. The reader's Kafka side
// (catch-up, read barrier) is proven on the real stack by stream/test/close-barrier.test.ts and ingest's tests.
import { createLogger } from '@votestream/runtime';
import type { PollDefinition, PollEvent } from '@votestream/schemas';
import test from 'ava';
import type { Kafka } from 'kafkajs';
import {
  type CatalogEntry,
  catalogPollsMax,
  closeTimeOf,
  mergePollEvent,
  PollCatalogReader,
  pollStatus,
} from '../../src/index.ts';

const t0 = 1_700_000_000_000;

function poll(over: Partial<PollDefinition> = {}): PollDefinition {
  return {
    pollId: 'p',
    title: 'p',
    options: [
      { id: 'yes', label: 'Yes' },
      { id: 'no', label: 'No' },
    ],
    opensAt: t0,
    closesAt: null,
    closedAt: null,
    ...over,
  };
}

const closeTimes: Array<[string, Partial<PollDefinition>, number | null]> = [
  ['open-ended', {}, null],
  ['scheduled close only', { closesAt: t0 + 100 }, t0 + 100],
  ['closed by an admin only', { closedAt: t0 + 50 }, t0 + 50],
  ['admin close before the scheduled one', { closesAt: t0 + 100, closedAt: t0 + 50 }, t0 + 50],
  ['admin close after the scheduled one', { closesAt: t0 + 100, closedAt: t0 + 150 }, t0 + 100],
];
for (const [name, over, expected] of closeTimes) {
  test(`closeTimeOf: ${name}`, (t) => {
    t.is(closeTimeOf(poll(over)), expected);
  });
}

const statuses: Array<[string, Partial<PollDefinition>, number, 'scheduled' | 'open' | 'closed']> = [
  ['before opensAt', { closesAt: t0 + 100 }, t0 - 1, 'scheduled'],
  ['at opensAt', { closesAt: t0 + 100 }, t0, 'open'],
  ['one ms before the close', { closesAt: t0 + 100 }, t0 + 99, 'open'],
  ['at the close (inclusive)', { closesAt: t0 + 100 }, t0 + 100, 'closed'],
  ['after an admin close before the scheduled one', { closesAt: t0 + 100, closedAt: t0 + 50 }, t0 + 60, 'closed'],
  ['open-ended, long after opening', {}, t0 + 86_400_000, 'open'],
  ['closed before it opened: scheduled wins until opensAt', { closedAt: t0 - 10 }, t0 - 20, 'scheduled'],
];
for (const [name, over, now, expected] of statuses) {
  test(`pollStatus: ${name}`, (t) => {
    t.is(pollStatus(poll(over), now), expected);
  });
}

const entry = (over: Partial<PollDefinition>, offset: number): CatalogEntry => ({
  poll: poll(over),
  offset,
  optionIds: new Set(['yes', 'no']),
});

// [name, current entry, incoming definition, its offset, expected { closedAt, title, offset } or 'ignored']
const merges: Array<
  [
    string,
    CatalogEntry | undefined,
    Partial<PollDefinition>,
    number,
    { closedAt: number | null; title: string; offset: number } | 'ignored',
  ]
> = [
  ['a new poll is taken as it is', undefined, {}, 3, { closedAt: null, title: 'p', offset: 3 }],
  [
    'a newer definition replaces the older',
    entry({}, 3),
    { title: 'renamed' },
    4,
    { closedAt: null, title: 'renamed', offset: 4 },
  ],
  ['an event at the same offset (local apply, then consumed) is ignored', entry({}, 3), { title: 'x' }, 3, 'ignored'],
  ['an older event is ignored', entry({ closedAt: t0 + 5 }, 7), {}, 6, 'ignored'],
  ['a close is taken', entry({}, 3), { closedAt: t0 + 50 }, 4, { closedAt: t0 + 50, title: 'p', offset: 4 }],
  [
    'a later event never reopens a closed poll',
    entry({ closedAt: t0 + 50 }, 4),
    { closedAt: null, title: 'r' },
    5,
    { closedAt: t0 + 50, title: 'r', offset: 5 },
  ],
  [
    'a later close never moves the close later',
    entry({ closedAt: t0 + 50 }, 4),
    { closedAt: t0 + 90 },
    5,
    { closedAt: t0 + 50, title: 'p', offset: 5 },
  ],
  [
    'an earlier close wins',
    entry({ closedAt: t0 + 50 }, 4),
    { closedAt: t0 + 20 },
    5,
    { closedAt: t0 + 20, title: 'p', offset: 5 },
  ],
];
for (const [name, current, incoming, offset, expected] of merges) {
  test(`mergePollEvent: ${name}`, (t) => {
    const merged = mergePollEvent(current, poll(incoming), offset);
    if (expected === 'ignored') {
      t.is(merged, undefined);
      return;
    }
    t.deepEqual(
      merged && { closedAt: merged.poll.closedAt, title: merged.poll.title, offset: merged.offset },
      expected,
    );
    t.deepEqual([...(merged?.optionIds ?? [])], ['yes', 'no']);
  });
}

test('mergePollEvent: a negative or fractional offset is an invariant failure', (t) => {
  t.throws(() => mergePollEvent(undefined, poll(), -1), { message: /not a valid offset/ });
  t.throws(() => mergePollEvent(undefined, poll(), 1.5), { message: /not a valid offset/ });
});

// The reader's apply is pure too (the Kafka client is only touched by start/catchUp, never here).
function reader(pollsMax: number): PollCatalogReader {
  return new PollCatalogReader({
    kafka: {} as Kafka,
    topic: 'polls',
    decode: () => Promise.reject(new Error('not used')),
    logger: createLogger('poll-catalog-test', 'silent'),
    groupIdPrefix: 'test-catalog',
    endOffsets: () => Promise.reject(new Error('not used')),
    catchUpTimeoutMs: 1000,
    pollsMax,
  });
}
const event = (over: Partial<PollDefinition>): PollEvent => ({
  eventId: 'e',
  type: over.closedAt ? 'CLOSED' : 'CREATED',
  occurredAt: t0,
  poll: poll(over),
});

test('apply: the local apply of an admin write and its later consumption commute', (t) => {
  const local = reader(10);
  local.apply(event({ closedAt: t0 + 50 }), 8); // the admin's own write, applied at its offset
  local.apply(event({}), 7); // the consumer then reads the CREATED event below it ...
  local.apply(event({ closedAt: t0 + 50 }), 8); // ... and the CLOSED event itself
  const consumed = reader(10);
  consumed.apply(event({}), 7);
  consumed.apply(event({ closedAt: t0 + 50 }), 8);
  t.deepEqual(local.get('p'), consumed.get('p'));
  t.is(local.get('p')?.poll.closedAt, t0 + 50);
  t.is(local.size, 1);
});

test('apply: a new poll beyond pollsMax is refused and changes nothing; known polls still update', (t) => {
  const c = reader(2);
  c.apply(event({ pollId: 'a' }), 0);
  c.apply(event({ pollId: 'b' }), 1);
  t.throws(() => c.apply(event({ pollId: 'c' }), 2), {
    message: /poll catalog is full \(pollsMax=2\): poll c refused/,
  });
  t.is(c.size, 2);
  t.is(c.get('c'), undefined);
  c.apply(event({ pollId: 'a', closedAt: t0 + 1 }), 3);
  t.is(c.get('a')?.poll.closedAt, t0 + 1);
  t.deepEqual(
    [...c.entries()].map((e) => e.poll.pollId),
    ['a', 'b'],
  );
});

test('the size cap cannot be configured above catalogPollsMax', (t) => {
  t.throws(() => reader(catalogPollsMax + 1), { message: /pollsMax must be 1\.\.100000/ });
  t.notThrows(() => reader(catalogPollsMax));
});
