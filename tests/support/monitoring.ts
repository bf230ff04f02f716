// What deploy/monitoring's alert rules and dashboards name, read without a YAML library: the rule file's
// structure is checked by `promtool check rules` (scripts/test); this only needs each rule's name and expr.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MonitoringQuery {
  /** Where the query is: `rules/<file>: <alert or record name>` or `dashboards/<file>: <panel title>`. */
  source: string;
  expr: string;
}

/** Every rule's expr (alerts and recording rules) and the names the recording rules define. */
export function readRules(file: string): { queries: MonitoringQuery[]; recorded: Set<string> } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const queries: MonitoringQuery[] = [];
  const recorded = new Set<string>();
  let rules = 0;
  let current = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const head = /^\s*- (alert|record):\s*(\S+)\s*$/.exec(line);
    if (head?.[1] !== undefined && head[2] !== undefined) {
      rules++;
      current = head[2];
      if (head[1] === 'record') recorded.add(current);
      continue;
    }
    const expr = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!expr || expr[1] === undefined || expr[2] === undefined) continue;
    let text = expr[2];
    if (text === '|' || text === '>') {
      // Block scalar: the following lines indented deeper than `expr:`.
      const indent = expr[1].length;
      const body: string[] = [];
      while (i + 1 < lines.length) {
        const next = lines[i + 1] ?? '';
        if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
        body.push(next.trim());
        i++;
      }
      text = body.join(' ');
    }
    queries.push({ source: `rules/${file.split('/').pop()}: ${current}`, expr: text.trim() });
  }
  if (queries.length !== rules) throw new Error(`${file}: ${rules} rules but ${queries.length} exprs found`);
  return { queries, recorded };
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every target expr of every panel (rows' nested panels included) of a Grafana dashboard JSON. */
export function readDashboard(file: string): MonitoringQuery[] {
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { panels?: Panel[] };
  const out: MonitoringQuery[] = [];
  const walk = (panels: Panel[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? [])
        if (t.expr) out.push({ source: `dashboards/${file.split('/').pop()}: ${p.title ?? '?'}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** All queries of deploy/monitoring (rules/*.yaml, dashboards/*.json) and the recording rules' names. */
export function readMonitoring(dir: string): { queries: MonitoringQuery[]; recorded: Set<string> } {
  const queries: MonitoringQuery[] = [];
  const recorded = new Set<string>();
  for (const f of readdirSync(join(dir, 'rules')).filter((f) => f.endsWith('.yaml'))) {
    const r = readRules(join(dir, 'rules', f));
    queries.push(...r.queries);
    for (const name of r.recorded) recorded.add(name);
  }
  for (const f of readdirSync(join(dir, 'dashboards')).filter((f) => f.endsWith('.json')))
    queries.push(...readDashboard(join(dir, 'dashboards', f)));
  return { queries, recorded };
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects: `names` (plain selectors) and `patterns` (selectors by
 * `__name__=~"regex"`, returned as the regex source). Label matchers, grouping labels, ranges, strings, numbers,
 * functions and keywords are not names.
 */
export function metricNames(expr: string): { names: Set<string>; patterns: Set<string> } {
  const patterns = new Set<string>();
  let s = expr.replace(/__name__\s*=~\s*"([^"]*)"/g, (_m, re: string) => {
    patterns.add(re);
    return '';
  });
  s = s
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const name = m[0];
    const after = s.slice((m.index ?? 0) + name.length);
    if (/^\s*\(/.test(after)) continue; // a function
    if (KEYWORDS.has(name.toLowerCase())) continue;
    if (/^[0-9]/.test(name)) continue;
    const before = s.slice(0, m.index ?? 0);
    if (/[0-9.]$/.test(before)) continue; // the exponent of 1e-9
    names.add(name);
  }
  return { names, patterns };
}

/**
 * The sample names a Prometheus text exposition can have, from its `# TYPE` lines (prom-client prints them for
 * every registered metric, with or without samples): the name, and for histograms and summaries their
 * _bucket / _sum / _count series.
 */
export function exposedNames(exposition: string): Set<string> {
  const out = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const name = m[1] ?? '';
    out.add(name);
    if (m[2] === 'histogram' || m[2] === 'summary') {
      out.add(`${name}_bucket`);
      out.add(`${name}_sum`);
      out.add(`${name}_count`);
    }
  }
  return out;
}
