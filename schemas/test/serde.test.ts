import test from 'ava';
import type { RecordName } from '../src/index.ts';
import {
  AvroDecodeError,
  AvroEncodeError,
  compatibilityPolicy,
  createAvroSerde,
  recordFullNames,
  recordNames,
} from '../src/index.ts';
import { getCompatibility, plain, registryUrl, samples, uniqueSubjectPrefix } from './fixtures.ts';

const subjectPrefix = uniqueSubjectPrefix('serde');
const serdePromise = createAvroSerde({ registryUrl, subjectPrefix });

for (const name of recordNames) {
  test(`a ${name} survives a round trip through the registry in the Confluent wire format`, async (t) => {
    const serde = await serdePromise;
    const value = samples[name as RecordName]();
    const bytes = serde.encoder(name)(value as never);
    t.is(bytes[0], 0, 'magic byte');
    t.is(bytes.readUInt32BE(1), serde.schemaIds[name]!);
    // A second serde has an empty cache: it must fetch the writer schema by id from the registry.
    const fresh = await createAvroSerde({ registryUrl, subjectPrefix, records: [] });
    t.deepEqual(plain(await fresh.decoder(name)(bytes)), plain(value));
    t.deepEqual(plain(await serde.decoder(name)(bytes)), plain(value));
  });
}

test('auto-registration puts each record under its record-name subject with the project policy', async (t) => {
  await serdePromise;
  for (const name of recordNames) {
    t.is(await getCompatibility(`${subjectPrefix}${recordFullNames[name]}`), compatibilityPolicy);
  }
});

test('a wrong magic byte is a clear AvroDecodeError', async (t) => {
  const serde = await serdePromise;
  const bytes = serde.encoder('VoteCast')(samples.VoteCast());
  bytes[0] = 0x7b; // '{': someone wrote JSON to the topic
  const err = await t.throwsAsync(serde.decoder('VoteCast')(bytes), { instanceOf: AvroDecodeError });
  t.is(err?.message, 'io.votestream.VoteCast: wrong magic byte 0x7b (expected 0x00): not Confluent wire-format Avro');
});

test('an unknown schema id is a clear AvroDecodeError naming the id', async (t) => {
  const serde = await serdePromise;
  const bytes = serde.encoder('VoteCast')(samples.VoteCast());
  bytes.writeUInt32BE(2_000_000_000, 1);
  const err = await t.throwsAsync(serde.decoder('VoteCast')(bytes), { instanceOf: AvroDecodeError });
  t.is(err?.message, 'io.votestream.VoteCast: unknown schema id 2000000000: the registry has no such schema');
  t.is(err?.schemaId, 2_000_000_000);
});

test('a payload shorter than the wire header is a truncated-payload AvroDecodeError', async (t) => {
  const serde = await serdePromise;
  const err = await t.throwsAsync(serde.decoder('TallyUpdate')(Buffer.from([0, 0, 1])), {
    instanceOf: AvroDecodeError,
  });
  t.regex(
    err?.message ?? '',
    /^io\.votestream\.TallyUpdate: truncated payload: 3 bytes, shorter than the 5-byte wire header/,
  );
});

test('a body cut short is a truncated-payload AvroDecodeError', async (t) => {
  const serde = await serdePromise;
  const bytes = serde.encoder('TallyUpdate')(samples.TallyUpdate());
  const err = await t.throwsAsync(serde.decoder('TallyUpdate')(bytes.subarray(0, bytes.length - 4)), {
    instanceOf: AvroDecodeError,
  });
  t.is(
    err?.message,
    `io.votestream.TallyUpdate: truncated payload: the ${bytes.length - 9}-byte body ends before the record does (schema id ${serde.schemaIds.TallyUpdate})`,
  );
});

test('trailing bytes after the record are an AvroDecodeError, not silently ignored', async (t) => {
  const serde = await serdePromise;
  const bytes = Buffer.concat([serde.encoder('PollEvent')(samples.PollEvent()), Buffer.from([1, 2, 3])]);
  const err = await t.throwsAsync(serde.decoder('PollEvent')(bytes), { instanceOf: AvroDecodeError });
  t.regex(err?.message ?? '', /^io\.votestream\.PollEvent: 3 trailing bytes after the record/);
});

test('garbage after a valid header is an AvroDecodeError, never a crash', async (t) => {
  const serde = await serdePromise;
  const header = serde.encoder('VoteDecision')(samples.VoteDecision()).subarray(0, 5);
  // 0xff...: varints that never end, then absurd lengths and indexes.
  for (const body of [Buffer.alloc(40, 0xff), Buffer.from([0x7f, 0x01, 0x02]), Buffer.alloc(0)]) {
    await t.throwsAsync(serde.decoder('VoteDecision')(Buffer.concat([header, body])), { instanceOf: AvroDecodeError });
  }
});

test('bytes written for another record type are refused with both names in the message', async (t) => {
  const serde = await serdePromise;
  const tally = serde.encoder('TallyUpdate')(samples.TallyUpdate());
  const err = await t.throwsAsync(serde.decoder('VoteCast')(tally), { instanceOf: AvroDecodeError });
  t.regex(
    err?.message ?? '',
    /^io\.votestream\.VoteCast: schema id \d+ \(io\.votestream\.TallyUpdate\) cannot be read as io\.votestream\.VoteCast/,
  );
});

test('the encoder refuses a value that does not match the schema and names the field', (t) => {
  return serdePromise.then((serde) => {
    const bad = { ...samples.TallyUpdate(), total: 'many' };
    const err = t.throws(() => serde.encoder('TallyUpdate')(bad as never), { instanceOf: AvroEncodeError });
    t.is(err?.message, 'io.votestream.TallyUpdate: value does not match the schema: total = "many"');
  });
});

test('a record bigger than the encoder scratch buffer is written whole', async (t) => {
  const serde = await serdePromise;
  const big = samples.TallyUpdate();
  for (let i = 0; i < 3000; i++) big.totals[`option-${i}`] = i;
  const bytes = serde.encoder('TallyUpdate')(big);
  t.true(bytes.length > 16 * 1024);
  t.deepEqual(plain(await serde.decoder('TallyUpdate')(bytes)), plain(big));
});
