// The data engineers' workflow behind `schemas:check` and `schemas:register`. Directories are parameters so tests
// can run the same code on a scratch copy of the contracts.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { CompatIssue } from './compat.ts';
import { checkAgainstHistory, lintContract } from './compat.ts';
import type { Contract, HistoricVersion } from './contracts.ts';
import { avroDir, historyDir, historyFileText, loadContracts, loadHistory, schemaText } from './contracts.ts';
import { compatibilityPolicy, subjectFor } from './policy.ts';
import { ensureSubjectCompatibility, parseSchema } from './serde.ts';

export interface Dirs {
  avroDir?: string;
  historyDir?: string;
}

export interface ContractCheck {
  fullName: string;
  file: string;
  /** Versions in history. */
  versions: number;
  /** The working copy differs from the latest history version (or there is none). */
  changed: boolean;
  lint: string[];
  issues: CompatIssue[];
}

export interface CheckResult {
  ok: boolean;
  /** Errors that stop the check before comparing (unparseable file, broken history). */
  errors: string[];
  contracts: ContractCheck[];
}

export function checkContracts(dirs: Dirs = {}): CheckResult {
  const avro = dirs.avroDir ?? avroDir;
  const history = dirs.historyDir ?? historyDir;
  const errors: string[] = [];
  let contracts: Contract[];
  try {
    contracts = loadContracts(avro);
  } catch (err) {
    return { ok: false, errors: [(err as Error).message], contracts: [] };
  }
  const out: ContractCheck[] = [];
  for (const c of contracts) {
    const file = join(avro, `${c.name}.avsc`);
    try {
      parseSchema(c.expanded);
    } catch (err) {
      errors.push(`${file}: not a valid Avro schema: ${(err as Error).message}`);
      continue;
    }
    let versions: HistoricVersion[];
    try {
      versions = loadHistory(c.fullName, history);
    } catch (err) {
      errors.push((err as Error).message);
      continue;
    }
    const latest = versions.at(-1);
    out.push({
      fullName: c.fullName,
      file,
      versions: versions.length,
      changed: !latest || schemaText(latest.schema) !== schemaText(c.expanded),
      lint: lintContract(c.expanded),
      issues: checkAgainstHistory(c.expanded, versions),
    });
  }
  const ok = errors.length === 0 && out.every((c) => c.issues.length === 0 && c.lint.length === 0);
  return { ok, errors, contracts: out };
}

export function formatReport(result: CheckResult, show: (path: string) => string = (p) => p): string {
  const lines: string[] = [
    `schemas:check: policy ${compatibilityPolicy}: every new version must read records of ALL earlier versions (backward) and be readable by consumers on ALL earlier versions (forward).`,
  ];
  for (const e of result.errors) lines.push(`ERROR ${e}`);
  for (const c of result.contracts) {
    const range = c.versions === 0 ? 'no registered versions yet' : c.versions === 1 ? 'v1' : `v1..v${c.versions}`;
    if (c.issues.length === 0 && c.lint.length === 0) {
      lines.push(
        c.versions === 0
          ? `ok   ${c.fullName}: new contract; \`npm run schemas:register\` releases it as v1`
          : c.changed
            ? `ok   ${c.fullName}: changed, compatible with ${range}; \`npm run schemas:register\` releases it as v${c.versions + 1}`
            : `ok   ${c.fullName}: unchanged since v${c.versions}`,
      );
      continue;
    }
    lines.push(`FAIL ${c.fullName} (${show(c.file)})`);
    for (const l of c.lint) lines.push(`     lint: ${l}`);
    for (const i of c.issues) {
      const dir =
        i.direction === 'backward'
          ? `new schema reading v${i.version} records`
          : `v${i.version} consumers reading new records`;
      lines.push(`     [${i.rule}] ${dir}: ${i.message}`);
      lines.push(`       fix: ${i.fix}`);
    }
  }
  const failed = result.contracts.filter((c) => c.issues.length > 0 || c.lint.length > 0).length + result.errors.length;
  lines.push(
    failed === 0
      ? `schemas:check: ${result.contracts.length} contracts ok`
      : `schemas:check: ${failed} problem(s); see docs/schema-evolution.md for how to change a contract compatibly`,
  );
  return lines.join('\n');
}

export interface Released {
  fullName: string;
  version: number;
  path: string;
}

/** Appends v<N+1> to the history of every contract whose working copy changed. Call only after a passing check. */
export function releaseChangedContracts(opts: Dirs & { dryRun?: boolean } = {}): Released[] {
  const history = opts.historyDir ?? historyDir;
  const released: Released[] = [];
  for (const c of loadContracts(opts.avroDir ?? avroDir)) {
    const versions = loadHistory(c.fullName, history);
    const latest = versions.at(-1);
    if (latest && schemaText(latest.schema) === schemaText(c.expanded)) continue;
    const version = versions.length + 1;
    const path = join(history, c.fullName, `v${version}.avsc`);
    if (!opts.dryRun) {
      mkdirSync(join(history, c.fullName), { recursive: true });
      writeFileSync(path, historyFileText(c.expanded), { flag: 'wx' });
    }
    released.push({ fullName: c.fullName, version, path });
  }
  return released;
}

export interface RegisteredSubject {
  subject: string;
  compatibility: string;
  versions: { version: number; id: number }[];
}

/** Sets the policy on every subject and registers every history version in order (idempotent). */
export async function registerHistory(opts: {
  registryUrl: string;
  subjectPrefix?: string;
  historyDir?: string;
}): Promise<RegisteredSubject[]> {
  const history = opts.historyDir ?? historyDir;
  const registry = new SchemaRegistry({ host: opts.registryUrl, clientId: 'votestream-schemas-register' });
  const out: RegisteredSubject[] = [];
  const fullNames = readdirSync(history, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  for (const fullName of fullNames) {
    const subject = subjectFor(fullName, opts.subjectPrefix);
    await ensureSubjectCompatibility(opts.registryUrl, subject);
    const versions: { version: number; id: number }[] = [];
    for (const h of loadHistory(fullName, history)) {
      try {
        const { id } = await registry.register(
          { type: 'AVRO' as never, schema: schemaText(h.schema) },
          { subject, compatibility: compatibilityPolicy as never },
        );
        versions.push({ version: h.version, id });
      } catch (err) {
        throw new Error(
          `registry refused ${subject} v${h.version} (${h.path}) under ${compatibilityPolicy}: ${(err as Error).message}`,
        );
      }
    }
    out.push({ subject, compatibility: compatibilityPolicy, versions });
  }
  return out;
}
