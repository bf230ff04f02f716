/**
 * Names the code defines, read from the source files themselves (never from a hand-kept list), and the names
 * the docs define, read from their tables. docs-vs-code.test.ts compares the two.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');

export function read(path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

/** Repository-relative paths of the files under `dir` whose name passes `keep` (node_modules and dot dirs skipped). */
export function filesUnder(dir: string, keep: (path: string) => boolean): string[] {
  let entries: string[];
  try {
    entries = readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
  return entries
    .map((e) => join(dir, e))
    .filter((p) => !p.split('/').some((part) => part === 'node_modules' || part.startsWith('.')) && keep(p))
    .sort();
}

/** Production source: every workspace's src/, scripts/ and bench/ (not tests or generated code). */
export function sourceFiles(): string[] {
  const dirs = ['ingest/src', 'stream/src', 'projections/src', 'sdk/src', 'schemas/src', 'scripts', 'bench'];
  for (const lib of readdirSync(join(root, 'libs'))) dirs.push(`libs/${lib}/src`);
  return dirs.flatMap((d) => filesUnder(d, (p) => p.endsWith('.ts')));
}

/** docs/**\/*.md and README.md. */
export function docFiles(): string[] {
  return ['README.md', ...filesUnder('docs', (p) => p.endsWith('.md'))];
}

// ---------------------------------------------------------------------------------------------------- env vars

export interface EnvRead {
  name: string;
  file: string;
  /** The default the reader falls back to, when it is a literal (`undefined` = none or computed). */
  fallback?: string;
}

const envName = '[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+';

/** Evaluates a numeric literal expression like `7 * 24 * 3600` or `1_048_576`; undefined for anything else. */
function literal(expr: string): string | undefined {
  const e = expr.trim();
  const quoted = /^(['"`])([^'"`$]*)\1$/.exec(e);
  if (quoted) return quoted[2];
  if (e === 'true' || e === 'false') return e;
  if (/^[\d_]+(\s*\*\s*[\d_]+)*$/.test(e)) {
    return String(e.split('*').reduce((acc, n) => acc * Number(n.trim().replaceAll('_', '')), 1));
  }
  return undefined;
}

/**
 * Environment variables the code reads: the config readers (`r.int('NAME', fallback)`, `r.string`, `r.bool`,
 * `r.list`, `r.oneOf`, `r.optionalString`), any other call in a config module whose first argument is a
 * variable name (file and secret readers), and `process.env.NAME` / `env.NAME` anywhere in production source.
 */
export function envReads(): EnvRead[] {
  const out: EnvRead[] = [];
  for (const file of sourceFiles()) {
    const text = read(file);
    const readerCall = new RegExp(
      String.raw`\.(string|optionalString|int|bool|list)\(\s*'(${envName})'\s*(?:,\s*([^,)]+))?`,
      'g',
    );
    for (const m of text.matchAll(readerCall)) {
      const fallback = literal(m[3] ?? '');
      out.push({ name: m[2] as string, file, ...(fallback !== undefined ? { fallback } : {}) });
    }
    const oneOf = new RegExp(
      String.raw`\.oneOf\(\s*'(${envName})'\s*,\s*\[[^\]]*\](?:\s*as const)?\s*,\s*([^),]+)`,
      'g',
    );
    for (const m of text.matchAll(oneOf)) {
      const fallback = literal(m[2] ?? '');
      out.push({ name: m[1] as string, file, ...(fallback !== undefined ? { fallback } : {}) });
    }
    if (/(^|\/)config\.ts$/.test(file) || file.startsWith('libs/runtime/src/')) {
      for (const m of text.matchAll(new RegExp(String.raw`\b\w+\(\s*'(${envName})'\s*,`, 'g'))) {
        out.push({ name: m[1] as string, file });
      }
    }
    for (const m of text.matchAll(
      new RegExp(String.raw`\b(?:process\.)?env(?:\.(${envName})\b|\[\s*'(${envName})'\s*\])(?!\s*=[^=])`, 'g'),
    )) {
      out.push({ name: (m[1] ?? m[2]) as string, file });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------ metrics

/** Prometheus metric names registered by production code (`name: '...'` in files that use prom-client). */
export function metricNames(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of sourceFiles()) {
    const text = read(file);
    if (!/from 'prom-client'/.test(text)) continue;
    for (const m of text.matchAll(/\bname:\s*'([a-z][a-z0-9]*_[a-z0-9_]+)'/g)) out.set(m[1] as string, file);
    // A name built per service (`${service}_dead_letter_total`) stands for `<service>_dead_letter_total`.
    for (const m of text.matchAll(/`\$\{\w+\}(_[a-z0-9_]+)`/g)) out.set(`*${m[1]}`, file);
  }
  return out;
}

/** Whether a metric name is registered, directly or by a per-service name (`*_suffix`). */
export function metricRegistered(code: Map<string, string>, name: string): boolean {
  if (code.has(name)) return true;
  return [...code.keys()].some(
    (k) => k.startsWith('*') && new RegExp(`^(ingest|stream|projections)${k.slice(1)}$`).test(name),
  );
}

// ------------------------------------------------------------------------------------------------ problem codes

/** Problem codes and their HTTP status from ingest/src/http/problem.ts (`code: [status, title]`). */
export function problemCodes(): Map<string, number> {
  const text = read('ingest/src/http/problem.ts');
  const body = /const titles[^{]*\{([\s\S]*?)\n\};/.exec(text)?.[1] ?? '';
  const out = new Map<string, number>();
  for (const m of body.matchAll(/^\s*([a-z_]+):\s*\[(\d{3}),/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

// ------------------------------------------------------------------------------------------------ HTTP routes

export type Service = 'ingest' | 'stream' | 'projections';

/** `METHOD /path` with path parameters written `{}` (so `:pollId` and `{pollId}` compare equal). */
export function normalizeRoute(method: string, path: string): string {
  return `${method.toUpperCase()} ${path.replace(/[:{]\w+\}?/g, '{}')}`;
}

/** HTTP routes each service serves: Express `app.get('/path'` and node:http `url === '/path'` (GET). */
export function httpRoutes(): { service: Service; route: string; file: string }[] {
  const out: { service: Service; route: string; file: string }[] = [];
  for (const service of ['ingest', 'stream', 'projections'] as const) {
    for (const file of filesUnder(`${service}/src`, (p) => p.endsWith('.ts'))) {
      const text = read(file);
      for (const m of text.matchAll(/\b(?:app|router)\.(get|post|put|patch|delete)\(\s*'(\/[^']*)'/g)) {
        out.push({ service, route: normalizeRoute(m[1] as string, m[2] as string), file });
      }
      for (const m of text.matchAll(/\burl\s*===\s*'(\/[^']*)'/g)) {
        out.push({ service, route: normalizeRoute('GET', m[1] as string), file });
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------ topics

/** Topic names without the deployment prefix: `topicNames` in libs/runtime and the stream's changelogs. */
export function topicNamesInCode(applicationId: string): Set<string> {
  const out = new Set<string>();
  for (const m of read('libs/runtime/src/topics.ts').matchAll(/`\$\{prefix\}([a-z-]+)`/g)) out.add(m[1] as string);
  for (const m of read('stream/src/topology.ts').matchAll(/`\$\{prefix\}\$\{applicationId\}(-[a-z-]+)`/g)) {
    out.add(`${applicationId}${m[1]}`);
  }
  return out;
}

/** The production topics terraform creates (`terraform/modules/kafka-topics`): partitions and configs. */
export function terraformTopics(
  applicationId: string,
): Map<string, { partitions: string; config: Record<string, string> }> {
  const text = read('terraform/modules/kafka-topics/main.tf');
  const locals = new Map<string, Record<string, string>>();
  const pairs = (s: string) =>
    Object.fromEntries([...s.matchAll(/"([a-z.]+)"\s*=\s*([^,\n}]+)/g)].map((m) => [m[1], (m[2] as string).trim()]));
  for (const m of text.matchAll(/^\s{2}(delete|compact)\s*=\s*\{([\s\S]*?)\}/gm))
    locals.set(m[1] as string, pairs(m[2] as string));
  const out = new Map<string, { partitions: string; config: Record<string, string> }>();
  const block = /^\s{4}"?([a-z${}._-]+)"?\s*=\s*\{\s*\n\s*partitions\s*=\s*(\S+)\s*\n\s*config\s*=\s*(.+)\n/gm;
  for (const m of text.matchAll(block)) {
    const name = (m[1] as string).replace(/\$\{var\.application_id\}/, applicationId);
    const cfgExpr = m[3] as string;
    const base = locals.get(/local\.(delete|compact)/.exec(cfgExpr)?.[1] ?? '') ?? {};
    const extra = /merge\([^,]+,\s*\{(.*)\}\)/.exec(cfgExpr)?.[1] ?? '';
    out.set(name, { partitions: m[2] as string, config: { ...base, ...pairs(extra) } });
  }
  return out;
}

/** Default of a terraform variable: the root module's (terraform/variables.tf), else the kafka-topics module's. */
export function terraformDefault(variable: string): string | undefined {
  const re = new RegExp(String.raw`variable "${variable}" \{([^}]*)\}`);
  for (const file of ['terraform/variables.tf', 'terraform/modules/kafka-topics/main.tf']) {
    const body = re.exec(read(file))?.[1];
    if (body !== undefined) return /default\s*=\s*(\S+)/.exec(body)?.[1];
  }
  return undefined;
}

// ------------------------------------------------------------------------------------------------------- CQL

/** Tables and their columns from migrations/cql/*.cql (CREATE TABLE ... and ALTER TABLE ... ADD). */
export function cqlTables(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const file of filesUnder('migrations/cql', (p) => p.endsWith('.cql'))) {
    const text = read(file).replace(/--.*$/gm, '');
    for (const m of text.matchAll(
      /CREATE TABLE (?:IF NOT EXISTS )?(?:[\w{}]+\.)?(\w+)\s*\(([\s\S]*?)\)\s*(?:WITH|;)/gi,
    )) {
      const cols = new Set<string>();
      for (const line of (m[2] as string).split(',')) {
        const col = /^\s*(\w+)\s+\w/.exec(line)?.[1];
        if (col && col.toUpperCase() !== 'PRIMARY') cols.add(col);
      }
      out.set(m[1] as string, cols);
    }
    for (const m of text.matchAll(/ALTER TABLE (?:[\w{}]+\.)?(\w+)\s+ADD\s+\(?\s*(\w+)/gi)) {
      out.get(m[1] as string)?.add(m[2] as string);
    }
  }
  return out;
}

// ----------------------------------------------------------------------------------------------------- Redis

/**
 * Redis key families: the first segment after the key prefix in every key the code builds
 * (`${prefix}voted:{...}` is the family `voted`).
 */
export function redisKeyFamilies(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of sourceFiles()) {
    const text = read(file);
    // A local prefix that is itself a family (`const prefix = `${opts.keyPrefix}ch:``): its keys belong to it.
    const nested = new Map<string, string>();
    for (const m of text.matchAll(/const (\w+) = `\$\{[\w.]*[pP]refix\}([a-z][a-z-]*):`/g)) {
      nested.set(m[1] as string, m[2] as string);
    }
    for (const m of text.matchAll(/`\$\{([\w.]*[pP]refix|prefix)\}([a-z][a-z-]*):/g)) {
      if (/topicPrefix|subjectPrefix|transactionalIdPrefix/.test(m[0])) continue;
      out.set(nested.get(m[1] as string) ?? (m[2] as string), file);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------ MQTT

/** MQTT topics (with `<pollId>` for the parameter) from libs/read-models, and each payload type's fields. */
export function mqttTopics(): Map<string, string> {
  const out = new Map<string, string>();
  const text = read('libs/read-models/src/keys.ts');
  for (const m of text.matchAll(/(\w+):\s*\(pollId: string\): string => `([^`]+)`/g)) {
    out.set((m[2] as string).replace(/\$\{pollId\}/, '<pollId>'), m[1] as string);
  }
  return out;
}

/** Field names of an exported interface in libs/read-models/src/types.ts. */
export function interfaceFields(name: string): string[] {
  return interfaceFieldTypes(name).map(([field]) => field);
}

/** [field, type] of an exported interface (or an alias of one) in libs/read-models/src/types.ts. */
export function interfaceFieldTypes(name: string): [string, string][] {
  const text = read('libs/read-models/src/types.ts');
  const alias = new RegExp(String.raw`export type ${name} = (\w+);`).exec(text)?.[1];
  if (alias) return interfaceFieldTypes(alias);
  const body = new RegExp(String.raw`export interface ${name}\b[^{]*\{([\s\S]*?)\n\}`).exec(text)?.[1] ?? '';
  return [...body.matchAll(/^\s{2}(\w+)\??:\s*([^;]+);/gm)].map((m) => [m[1] as string, (m[2] as string).trim()]);
}

// ------------------------------------------------------------------------------------------------------ docs

/** The rows of the first markdown table after the heading line that starts with `heading`, as cells. */
export function tableAfter(doc: string, heading: string): string[][] {
  const lines = read(doc).split('\n');
  const start = lines.findIndex((l) => l.startsWith(heading));
  if (start < 0) throw new Error(`${doc}: no heading starting with ${JSON.stringify(heading)}`);
  let i = start + 1;
  while (i < lines.length && !lines[i]?.startsWith('|')) {
    if (lines[i]?.startsWith('#')) throw new Error(`${doc}: no table under ${JSON.stringify(heading)}`);
    i++;
  }
  const rows: string[][] = [];
  for (; i < lines.length && lines[i]?.startsWith('|'); i++) {
    const cells = (lines[i] as string)
      .replace(/\\\|/g, '\u0000')
      .split('|')
      .slice(1, -1)
      .map((c) => c.replaceAll('\u0000', '|').trim());
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    rows.push(cells);
  }
  return rows.slice(1); // without the header row
}

/** Every `code span` of a markdown cell or text (fenced code blocks are not spans). */
export function codeSpans(text: string): string[] {
  const prose = text.replace(/^```[\s\S]*?^```/gm, '');
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
}

export { relative };
