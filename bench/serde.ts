// Serde hot-path cost: node --import tsx bench/serde.ts [records=200000]
// Baseline in the same run: avsc toBuffer + Buffer.concat with a header (the naive wire-format encoder) and
// avsc fromBuffer on the body (decode without header parsing, resolution or checks). Needs the local registry.
import { randomUUID } from 'node:crypto';
import type { VoteCast } from '@votestream/schemas';
import { createAvroSerde, expandedSchemas, parseSchema } from '@votestream/schemas';

const n = Number(process.argv[2] ?? 200_000);
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const serde = await createAvroSerde({ registryUrl, records: ['VoteCast'], subjectPrefix: `bench-${Date.now()}.` });
const vote: VoteCast = {
  voteId: randomUUID(),
  pollId: 'final-2026',
  optionId: 'band-a',
  voterId: 'voter-123456789',
  idempotencyKey: randomUUID(),
  castAt: Date.now(),
  receivedAt: Date.now(),
  evidence: {
    challenge: 'SOLVED',
    challengeId: 'a1b2c3d4e5f6',
    tokenId: 'jti-0001',
    networkPrefix: '203.0.113.0/24',
    userAgent: 'votestream-sdk/1.0 (iOS 18)',
    deviceId: null,
    attestation: null,
  },
};

function time(label: string, fn: () => void): void {
  for (let i = 0; i < 10_000; i++) fn(); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  const ns = Number(process.hrtime.bigint() - t0);
  console.log(
    `${label.padEnd(52)} ${(ns / n).toFixed(0).padStart(6)} ns/record  ${((n / ns) * 1e9).toFixed(0).padStart(9)} records/s`,
  );
}

const type = parseSchema(expandedSchemas.VoteCast);
const header = Buffer.alloc(5);
header.writeUInt32BE(serde.schemaIds.VoteCast!, 1);
const validating = serde.encoder('VoteCast');
const unchecked = serde.encoder('VoteCast', { validate: false });
const decode = serde.decoder('VoteCast');
const bytes = validating(vote);
const body = bytes.subarray(5);
await decode(bytes); // first sight of the writer id: the only registry round trip

console.log(`VoteCast, ${bytes.length} bytes on the wire, ${n} records per row`);
time('baseline: avsc toBuffer + Buffer.concat(header)', () => Buffer.concat([header, type.toBuffer(vote)]));
time('serde encoder, validate: false', () => unchecked(vote));
time('serde encoder, validate: true (default)', () => validating(vote));
time('baseline: avsc fromBuffer(body)', () => type.fromBuffer(body));
let sink: unknown;
time('serde decoder (cached writer id; promise not awaited)', () => {
  sink = decode(bytes);
});
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) sink = await decode(bytes);
const ns = Number(process.hrtime.bigint() - t0);
console.log(
  `${'serde decoder, awaited one by one'.padEnd(52)} ${(ns / n).toFixed(0).padStart(6)} ns/record  ${((n / ns) * 1e9).toFixed(0).padStart(9)} records/s`,
);
void sink;
