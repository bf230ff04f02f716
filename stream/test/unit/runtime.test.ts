// The runtime's pure parts: recovery decided by the error's type, and the on-disk format of the task position
// (unchanged, so changelogs written before this runtime restore).

import { createRequire } from 'node:module';
import { InvariantError } from '@votestream/runtime';
import test from 'ava';
import { taskPosition } from '../../src/runtime/changelog.ts';
import {
  ChangelogCorruptError,
  IllegalTaskStateError,
  recoveryOf,
  TaskFailuresExhaustedError,
  TaskFencedError,
} from '../../src/runtime/errors.ts';

const require = createRequire(import.meta.url);
// Not exported by name from kafkajs' ESM entry: the classes KafkaJS itself throws.
const { KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } = require('kafkajs/src/errors.js') as {
  KafkaJSProtocolError: new (e: unknown) => Error;
  KafkaJSNumberOfRetriesExceeded: new (e: unknown, o: { retryCount: number; retryTime: number }) => Error;
};

test('recovery by error type: fenced -> rejoin, broken invariant -> fatal, anything else -> retry', (t) => {
  const fenced = new KafkaJSProtocolError(
    Object.assign(new Error('Producer attempted an operation with an old epoch'), {
      type: 'INVALID_PRODUCER_EPOCH',
      code: 47,
      retriable: false,
    }),
  );
  t.is(recoveryOf(fenced), 'rejoin');
  t.is(recoveryOf(new KafkaJSNumberOfRetriesExceeded(fenced, { retryCount: 5, retryTime: 100 })), 'rejoin');
  t.is(recoveryOf(new TaskFencedError('fenced')), 'rejoin');
  t.is(recoveryOf(new InvariantError('a tally never decreases')), 'fatal');
  t.is(recoveryOf(new IllegalTaskStateError('processBatch in closed')), 'fatal');
  t.is(recoveryOf(new ChangelogCorruptError('bad')), 'fatal');
  t.is(recoveryOf(new TaskFailuresExhaustedError('10 in a row')), 'fatal');
  t.is(recoveryOf(new Error('There is no leader for this topic-partition')), 'retry');
  t.is(recoveryOf('a string'), 'retry');
});

test('the task position keeps its on-disk key and value', (t) => {
  t.is(taskPosition.key, '\u0000position');
  t.is(taskPosition.encode(42n).toString(), '{"nextOffset":"42"}');
  t.is(taskPosition.decode(Buffer.from('{"nextOffset":"9007199254740993"}')), 9007199254740993n);
  t.throws(() => taskPosition.decode(Buffer.from('{"nextOffset":42}')), { instanceOf: ChangelogCorruptError });
  t.throws(() => taskPosition.decode(Buffer.from('nope')), { instanceOf: ChangelogCorruptError });
});
