// Mends a read_committed defect of KafkaJS 2.2.4 in the installed package (run after every `npm ci`: the root
// package's postinstall, the Dockerfile's two installs, scripts/test, tests/support/runtime.ts).
//
// The defect: a fetch response lists the partition's aborted transactions in the order the broker wrote their
// ABORT markers, not in the order they began. KafkaJS's filterAbortedMessages.js assumes the list is sorted by
// first offset and takes at most one entry per record, so when two producers' transactions interleave in one
// partition and the later-started one is aborted first, the earlier-started one's records are handed to a
// read_committed consumer although they were aborted. In votestream that happens wherever several
// transactional producers write one partition: `tally-partials` (every dedupe task writes a poll's partials to
// the same partition) and `analytics-votes` (every analytics task writes every partition). Found by the
// exactly-once test: 80 aborted analytics records read as committed after kill -9s (docs/components/stream.md).
//
// The mended filter sorts the aborted transactions by first offset and takes every entry that starts at or
// before the record, as the Java consumer does. libs/runtime's createKafka refuses to run without it
// (assertReadCommittedFilter), so an install that skipped this script fails at start-up, not silently.
//
//   node scripts/patch-kafkajs.mjs          patch (idempotent); exits 1 on a file it does not know
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export const marker = 'votestream: aborted transactions sorted by first offset';
/** SHA-256 of filterAbortedMessages.js as KafkaJS 2.2.4 ships it. */
const original = '54ce50f2a41ee1686da8b73bf8b502c7dd07c9d7cb0a494cdb36a7fc536ced8e';

const mended = `// ${marker} (scripts/patch-kafkajs.mjs in the votestream repository).
const ABORTED_MESSAGE_KEY = Buffer.from([0, 0, 0, 0])

const isAbortMarker = ({ key }) => {
  // Handle null/undefined keys.
  if (!key) return false
  // Cast key to buffer defensively
  return Buffer.from(key).equals(ABORTED_MESSAGE_KEY)
}

/**
 * Remove messages of aborted transactions. The broker lists the aborted transactions in the order of their
 * ABORT markers; a transaction starts at its firstOffset and ends at its producer's ABORT control record.
 * Every transaction that started at or before a record is active from that record on, whatever the list's order.
 */
module.exports = ({ messages, abortedTransactions }) => {
  if (!abortedTransactions || !abortedTransactions.length) {
    return messages
  }

  const remaining = abortedTransactions
    .map(({ producerId, firstOffset }) => ({ producerId, firstOffset: BigInt(firstOffset) }))
    .sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0))
  const current = new Set()
  let next = 0

  return messages.filter(message => {
    const offset = BigInt(message.offset)
    while (next < remaining.length && offset >= remaining[next].firstOffset) {
      current.add(remaining[next].producerId)
      next++
    }

    const { producerId, inTransaction } = message.batchContext

    if (isAbortMarker(message)) {
      // Transaction is over, we no longer need to ignore messages from this producer
      current.delete(producerId)
    } else if (current.has(producerId) && inTransaction) {
      return false
    }

    return true
  })
}
`;

export function patchKafkajs(fromDir = process.cwd()) {
  const require = createRequire(`${fromDir}/`);
  const file = require.resolve('kafkajs/src/consumer/filterAbortedMessages.js');
  const text = readFileSync(file, 'utf8');
  if (text.includes(marker)) return { file, patched: false };
  const sha = createHash('sha256').update(text).digest('hex');
  if (sha !== original)
    throw new Error(
      `${file} is not KafkaJS 2.2.4's (sha256 ${sha}): check whether its read_committed filter still needs the mend ` +
        'of scripts/patch-kafkajs.mjs, then update the script',
    );
  // KafkaJS's own file is kept beside it (libs/runtime's unit test shows the defect on it).
  writeFileSync(file.replace(/\.js$/, '.kafkajs-2.2.4.js'), text);
  writeFileSync(file, mended);
  return { file, patched: true };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const { file, patched } = patchKafkajs();
    console.log(`patch-kafkajs: ${patched ? 'mended' : 'already mended'} ${file}`);
  } catch (err) {
    console.error(`patch-kafkajs: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
