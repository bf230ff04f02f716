// KafkaJS's read_committed filter (filterAbortedMessages.js) and its mend (scripts/patch-kafkajs.mjs), without a
// broker: the installed filter drops interleaved aborted transactions listed out of first-offset order, KafkaJS
// 2.2.4's own does not, and the patch script mends only the file it knows. Over a real broker:
// libs/runtime/test/read-committed.test.ts.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type AbortedFilter, assertReadCommittedFilter, interleavedAbortsKept } from '../../src/kafka.ts';

const require = createRequire(import.meta.url);
const installed = require.resolve('kafkajs/src/consumer/filterAbortedMessages.js');
const kafkajsOwn = installed.replace(/\.js$/, '.kafkajs-2.2.4.js');
const script = new URL('../../../../scripts/patch-kafkajs.mjs', import.meta.url).href;
type Patch = { patchKafkajs: (dir: string) => { file: string; patched: boolean }; marker: string };

test('the installed filter drops both aborted transactions, whatever the order of the broker list', (t) => {
  t.deepEqual(interleavedAbortsKept(require(installed) as AbortedFilter), ['2', '3', '4']);
  t.notThrows(() => assertReadCommittedFilter());
});

test("KafkaJS 2.2.4's own filter hands out the earlier-started aborted transaction (the defect the check catches)", (t) => {
  t.deepEqual(interleavedAbortsKept(require(kafkajsOwn) as AbortedFilter), ['0', '2', '3', '4']);
});

test('the patch script mends KafkaJS 2.2.4 once, keeps its file, and refuses a file it does not know', async (t) => {
  const { patchKafkajs, marker } = (await import(script)) as Patch;
  const dir = mkdtempSync(join(tmpdir(), 'vs-patch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const consumerDir = join(dir, 'node_modules/kafkajs/src/consumer');
  mkdirSync(consumerDir, { recursive: true });
  writeFileSync(join(dir, 'node_modules/kafkajs/package.json'), '{"name":"kafkajs","version":"2.2.4"}');
  const file = join(consumerDir, 'filterAbortedMessages.js');
  const own = readFileSync(kafkajsOwn, 'utf8');
  writeFileSync(file, own);

  t.deepEqual(patchKafkajs(dir), { file, patched: true });
  t.true(readFileSync(file, 'utf8').includes(marker));
  t.is(readFileSync(join(consumerDir, 'filterAbortedMessages.kafkajs-2.2.4.js'), 'utf8'), own);
  t.deepEqual(interleavedAbortsKept(createRequire(file)(file) as AbortedFilter), ['2', '3', '4']);
  t.deepEqual(patchKafkajs(dir), { file, patched: false }, 'a second run changes nothing');

  const other = `${own}\n// another version\n`;
  writeFileSync(file, other);
  const sha = createHash('sha256').update(other).digest('hex');
  t.throws(() => patchKafkajs(dir), { message: new RegExp(`is not KafkaJS 2\\.2\\.4's \\(sha256 ${sha}\\)`) });
  t.is(readFileSync(file, 'utf8'), other, 'an unknown file is left as it is');
});
