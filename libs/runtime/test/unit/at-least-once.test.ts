// Unit tests of the rules of the one at-least-once consumer loop (AtLeastOnceLoop: projections' receipts and tallies,
// the stream's CQL tally sink) on one batch: what is decoded, dead-lettered, applied, retried, resolved and
// committed. Pure: a fake consumer, producer and batch; the stack tests of the three users cover it end to end.
import test from 'ava';
import type { Consumer, EachBatchPayload, KafkaMessage, Message, Producer } from 'kafkajs';
import { Counter, Registry } from 'prom-client';
import {
  AtLeastOnceLoop,
  backOffSliceMs,
  createLogger,
  deadLetterHeaders,
  InvariantError,
  invariant,
  retryDelayMsOf,
} from '../../src/index.ts';

const topic = 'in';
const partition = 3;
const delays = { min: 10, max: 25 };

/** An AvroDecodeError as @votestream/schemas throws it (matched by name, as deadLetterReasonOf does). */
class AvroDecodeError extends Error {
  override readonly name = 'AvroDecodeError';
}

function world(o: {
  values: (string | null)[];
  retryDelayMs?: { min: number; max: number };
  /** The batch's last offset: beyond the last record when the batch ends with transaction markers. */
  lastOffset?: string;
  decodeFailures?: Map<string, number>;
  apply?: (records: string[], call: number) => void;
  running?: () => boolean;
  stale?: () => boolean;
}) {
  const messages = o.values.map(
    (v, i) => ({ offset: String(100 + i), key: null, value: v === null ? null : Buffer.from(v) }) as KafkaMessage,
  );
  const log = {
    commits: [] as { topic: string; partition: number; offset: string }[],
    resolved: [] as string[],
    heartbeats: 0,
    decoded: [] as string[],
    applied: [] as string[][],
    deadLetters: [] as Message[],
    slept: [] as number[],
    records: 0,
    failures: 0,
  };
  const consumer = {
    commitOffsets: async (offsets: { topic: string; partition: number; offset: string }[]) => {
      log.commits.push(...offsets);
    },
  } as unknown as Consumer;
  const producer = {
    send: async ({ messages: m }: { messages: Message[] }) => {
      log.deadLetters.push(...m);
      return [];
    },
  } as unknown as Producer;
  const registry = new Registry();
  const decodeFailures = o.decodeFailures ?? new Map<string, number>();
  const loop = new AtLeastOnceLoop<string>({
    consumer,
    topic,
    fromBeginning: true,
    partitionsConsumedConcurrently: 1,
    decode: async (buf) => {
      const v = buf.toString();
      log.decoded.push(v);
      if (v.startsWith('poison')) throw new AvroDecodeError(`cannot decode ${v}`);
      const left = decodeFailures.get(v) ?? 0;
      if (left > 0) {
        decodeFailures.set(v, left - 1);
        throw new Error('schema registry unreachable');
      }
      return v;
    },
    deadLetters: {
      producer,
      topic: 'dead-letters',
      consumer: 'group-1',
      counter: new Counter({ name: 'dl_total', help: 'dl', labelNames: ['topic', 'reason'], registers: [registry] }),
    },
    apply: async (records) => {
      log.applied.push([...records]);
      o.apply?.(records, log.applied.length);
    },
    retryDelayMs: o.retryDelayMs ?? delays,
    metrics: {
      records: {
        inc: (n: number) => {
          log.records += n;
        },
      },
      failures: {
        inc: () => {
          log.failures += 1;
        },
      },
    },
    logger: createLogger('test', 'silent'),
    onFatal: () => {},
    sleep: async (ms) => void log.slept.push(ms),
  });
  const payload = {
    batch: {
      topic,
      partition,
      messages,
      lastOffset: () => o.lastOffset ?? messages.at(-1)?.offset ?? '-1',
    } as unknown as EachBatchPayload['batch'],
    heartbeat: async () => {
      log.heartbeats += 1;
    },
    isRunning: o.running ?? (() => true),
    isStale: o.stale ?? (() => false),
    resolveOffset: (offset: string) => void log.resolved.push(offset),
  };
  return { log, run: () => loop.onBatch(payload) };
}

test('a batch: poison is dead-lettered once and left out, the rest applied in order, then lastOffset + 1 committed', async (t) => {
  const { log, run } = world({ values: ['a', 'poison-1', null, 'b'], lastOffset: '104' });
  await run();
  t.deepEqual(log.applied, [['a', 'b']]);
  t.is(log.deadLetters.length, 2);
  t.deepEqual(
    log.deadLetters.map((m) => [m.headers?.[deadLetterHeaders.sourceOffset], m.headers?.[deadLetterHeaders.reason]]),
    [
      ['101', 'undecodable'],
      ['102', 'no_value'],
    ],
  );
  // The batch ends with a transaction marker at 104: the commit goes past it.
  t.deepEqual(log.resolved, ['104']);
  t.deepEqual(log.commits, [{ topic, partition, offset: '105' }]);
  t.is(log.records, 2);
  t.is(log.failures, 0);
  t.deepEqual(log.slept, []);
});

test('a batch of poison only is applied empty and committed past', async (t) => {
  const { log, run } = world({ values: ['poison-1'] });
  await run();
  t.deepEqual(log.applied, [[]]);
  t.is(log.deadLetters.length, 1);
  t.deepEqual(log.commits, [{ topic, partition, offset: '101' }]);
  t.is(log.records, 0);
});

test('a failing apply is retried in place with the same records, back-off doubling to its bound, one commit after', async (t) => {
  const { log, run } = world({
    values: ['a', 'poison-1', 'b'],
    apply: (_, call) => {
      if (call <= 3) throw new Error('CQL unreachable');
    },
  });
  await run();
  t.deepEqual(log.applied, [
    ['a', 'b'],
    ['a', 'b'],
    ['a', 'b'],
    ['a', 'b'],
  ]);
  t.deepEqual(log.decoded, ['a', 'poison-1', 'b'], 'nothing is decoded twice');
  t.is(log.deadLetters.length, 1, 'the poison record is dead-lettered once');
  t.is(log.failures, 3);
  t.deepEqual(log.slept, [10, 20, 25]);
  t.is(log.heartbeats, 3 + 1, 'a heartbeat between attempts and one after the commit');
  t.deepEqual(log.commits, [{ topic, partition, offset: '103' }]);
  t.is(log.records, 2);
});

test('a decode outage is retried from the record that failed; the records before it are not decoded again', async (t) => {
  const { log, run } = world({ values: ['a', 'b', 'c'], decodeFailures: new Map([['b', 2]]) });
  await run();
  t.deepEqual(log.decoded, ['a', 'b', 'b', 'b', 'c']);
  t.deepEqual(log.applied, [['a', 'b', 'c']]);
  t.is(log.failures, 2);
  t.deepEqual(log.slept, [10, 20]);
  t.deepEqual(log.commits, [{ topic, partition, offset: '103' }]);
});

test('a failure while the consumer stops or loses the partition is thrown: nothing resolved or committed', async (t) => {
  for (const which of ['stopping', 'stale'] as const) {
    let failed = false;
    const { log, run } = world({
      values: ['a'],
      apply: () => {
        failed = true;
        throw new Error('Redis unreachable');
      },
      ...(which === 'stopping' ? { running: () => !failed } : { stale: () => failed }),
    });
    const err = await t.throwsAsync(run());
    t.is(err?.message, 'Redis unreachable', which);
    t.is(log.applied.length, 1, which);
    t.is(log.failures, 1, which);
    t.deepEqual(log.resolved, [], which);
    t.deepEqual(log.commits, [], which);
    t.is(log.records, 0, which);
  }
});

test('a broken invariant is not retried: thrown to KafkaJS at once, nothing committed', async (t) => {
  const { log, run } = world({
    values: ['a'],
    apply: (records) => invariant(records.length === 0, 'no records expected'),
  });
  const err = await t.throwsAsync(run(), { instanceOf: InvariantError });
  t.is(err?.message, 'no records expected');
  t.is(log.applied.length, 1);
  t.deepEqual(log.slept, []);
  t.deepEqual(log.commits, []);
});

test('an empty batch, a stopping consumer or a sought partition: nothing decoded, applied or committed', async (t) => {
  for (const w of [
    world({ values: [] }),
    world({ values: ['a'], running: () => false }),
    world({ values: ['a'], stale: () => true }),
  ]) {
    await w.run();
    t.deepEqual(w.log.decoded, []);
    t.deepEqual(w.log.applied, []);
    t.deepEqual(w.log.commits, []);
    t.deepEqual(w.log.resolved, []);
  }
});

test('retry delays double from min and stay at max, also after very many attempts', (t) => {
  const r = { min: 200, max: 5_000 };
  t.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 100, 10_000].map((a) => retryDelayMsOf(a, r)),
    [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000],
  );
});

test('a back-off longer than the slice is slept in slices with a heartbeat after each, and ends when the partition is lost', async (t) => {
  const long = { min: 2 * backOffSliceMs + 500, max: 2 * backOffSliceMs + 500 };
  const { log, run } = world({
    values: ['a'],
    retryDelayMs: long,
    apply: (_, call) => {
      if (call === 1) throw new Error('Redis unreachable');
    },
  });
  await run();
  t.deepEqual(log.slept, [backOffSliceMs, backOffSliceMs, 500]);
  t.is(log.heartbeats, 1 + 2 + 1, 'before the back-off, after each full slice, after the commit');
  t.deepEqual(log.applied, [['a'], ['a']]);

  // The partition is lost during the first slice: the wait ends at the next heartbeat and the error goes to KafkaJS,
  // with nothing resolved or committed.
  const lost = world({
    values: ['a'],
    retryDelayMs: long,
    stale: () => lost.log.slept.length > 0,
    apply: () => {
      throw new Error('Redis unreachable');
    },
  });
  await t.throwsAsync(lost.run(), { message: 'Redis unreachable' });
  t.deepEqual(lost.log.slept, [backOffSliceMs]);
  t.deepEqual(lost.log.commits, []);
  t.deepEqual(lost.log.resolved, []);
});
