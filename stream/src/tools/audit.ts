/**
 * The audit trail of a poll (docs/trust.md section 2):
 *   npm run audit -- export --poll <pollId> [--out file.json]
 *       the signed checkpoint of the final tally and every chained decision (no voter ids), from Kafka
 *   npm run audit -- verify --poll <pollId> [--file export.json] [--results-url URL] [--public-key pem]
 *                           [--vote <voteId>]
 *       recomputes every chain, checks heads, counts, totals and the Ed25519 signature; with --results-url the
 *       checkpoint is the one the public results API publishes; --vote shows where a receipt's vote is chained
 * Kafka and the registry come from the stream's environment variables. Exit 0: verified; 1: a fault (each
 * named, with the partition and position where it can be located); 2: bad usage or nothing to verify.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '@votestream/runtime';
import { type ChainFault, verifyExport } from '../audit/chain.ts';
import { type AuditExport, exportAudit } from '../audit/export.ts';
import { loadStreamConfig } from '../config.ts';

const usage =
  'usage: npm run audit -- export --poll <pollId> [--out file]\n' +
  '       npm run audit -- verify --poll <pollId> [--file export.json] [--results-url URL] [--public-key pem] [--vote voteId]\n';
const fail = (msg: string): never => {
  process.stderr.write(`${msg}\n${usage}`);
  process.exit(2);
};

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      poll: { type: 'string' },
      out: { type: 'string' },
      file: { type: 'string' },
      'results-url': { type: 'string' },
      'public-key': {
        type: 'string',
        default: process.env.AUDIT_PUBLIC_KEY_FILE ?? '.stack/secrets/audit-signing-public.pem',
      },
      vote: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' },
    },
  });
}
try {
  parsed = parse();
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed!;
const command = positionals[0];
if ((command !== 'export' && command !== 'verify') || !values.poll)
  fail('a command (export or verify) and --poll are required');
const pollId = values.poll as string;

const config = loadStreamConfig();
const logger = createLogger('audit', config.logLevel === 'info' ? 'warn' : config.logLevel);
const sources = {
  pollId,
  kafkaBrokers: config.kafkaBrokers,
  kafkaSecurity: config.kafkaSecurity,
  schemaRegistryUrl: config.schemaRegistryUrl,
  topicPrefix: config.topicPrefix,
  readTimeoutMs: Number(values['timeout-ms']),
  logger,
};

function describe(f: ChainFault): string {
  switch (f.kind) {
    case 'link-mismatch':
      return `partition ${f.source} position ${f.position} (vote ${f.voteId}): the link differs from the recomputed one (a decision changed, dropped, added or moved here)`;
    case 'head-mismatch':
      return `partition ${f.source}: the chain of ${f.count} decisions ends at ${f.computed}, the checkpoint says ${f.expected}`;
    case 'count-mismatch':
      return `partition ${f.source}: ${f.exported} decisions, the checkpoint says ${f.expected}`;
    case 'missing-source':
      return `partition ${f.source}: in the checkpoint, not in the export`;
    case 'totals-mismatch':
      return `option ${f.option}: ${f.chained} counted decisions in the chains, the checkpoint's tally says ${f.checkpoint}`;
    case 'bad-signature':
      return 'the checkpoint signature does not verify with the public key';
    case 'unsigned':
      return 'the checkpoint is not signed';
  }
}

if (command === 'export') {
  const exported = await exportAudit(sources);
  const text = `${JSON.stringify(exported, null, 2)}\n`;
  if (values.out) writeFileSync(values.out, text);
  else process.stdout.write(text);
  process.exit(0);
}

const exported: AuditExport = values.file
  ? (JSON.parse(readFileSync(values.file, 'utf8')) as AuditExport)
  : await exportAudit(sources);
if (exported.pollId !== pollId) fail(`the export is of poll ${exported.pollId}, not ${pollId}`);
let checkpoint = exported;
if (values['results-url']) {
  // What the public sees: the checkpoint published with the final results, not the one in the export.
  const res = await fetch(`${values['results-url'].replace(/\/$/, '')}/v1/polls/${encodeURIComponent(pollId)}/results`);
  if (res.status !== 200) fail(`GET results answered ${res.status}`);
  const r = (await res.json()) as {
    version: number;
    totals: Record<string, number>;
    final: boolean;
    audit?: { heads: AuditExport['heads']; signature: string | null; keyId: string | null };
  };
  if (!r.final || !r.audit) fail('the results API has no final audit checkpoint for this poll yet');
  checkpoint = { ...exported, version: r.version, totals: r.totals, ...r.audit! };
}
let publicKey: string | null = null;
try {
  publicKey = readFileSync(values['public-key'] as string, 'utf8');
} catch {
  publicKey = null;
}
const faults = verifyExport({
  pollId,
  version: checkpoint.version,
  totals: checkpoint.totals,
  heads: checkpoint.heads,
  signature: checkpoint.signature,
  chains: exported.chains,
  publicKey,
});
const decisions = exported.chains.reduce((n, c) => n + c.links.length, 0);
const lines = [
  `audit of poll ${pollId}: ${exported.chains.length} partitions, ${decisions} chained decisions, tally version ${checkpoint.version}, key ${checkpoint.keyId ?? '-'}`,
];
let voteMissing = false;
if (values.vote) {
  const at = exported.chains.flatMap((c) =>
    c.links.map((l, i) => ({ source: c.source, position: i, ...l })).filter((l) => l.leaf.voteId === values.vote),
  );
  lines.push(
    at.length === 0
      ? `vote ${values.vote}: NOT in the chains`
      : at
          .map(
            (l) =>
              `vote ${values.vote}: partition ${l.source} position ${l.position}, ${l.leaf.outcome}${l.leaf.reason ? ` ${l.leaf.reason}` : ''} for ${l.leaf.optionId}, link ${l.link}`,
          )
          .join('\n'),
  );
  voteMissing = at.length === 0;
}
for (const f of faults) lines.push(`FAULT ${describe(f)}`);
const ok = faults.length === 0 && !voteMissing;
lines.push(ok ? 'OK: every chain, head, count, the totals and the signature verify' : 'FAILED');
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(ok ? 0 : 1);
