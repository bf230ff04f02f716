/**
 * The docs name what the code does: environment variables, metrics, problem codes, HTTP routes, Kafka topics,
 * CQL tables, Redis key families and MQTT topics. Each test derives the names from the code (see code-facts.ts)
 * and from the docs' tables, and lists every disagreement by name, in both directions: a name the code has and
 * no doc lists (document it), and a name a doc lists that the code no longer has (remove or fix the doc).
 */
import test from 'ava';
import {
  codeSpans,
  cqlTables,
  docFiles,
  envReads,
  httpRoutes,
  interfaceFields,
  interfaceFieldTypes,
  metricNames,
  metricRegistered,
  mqttTopics,
  normalizeRoute,
  problemCodes,
  read,
  redisKeyFamilies,
  type Service,
  sourceFiles,
  tableAfter,
  terraformDefault,
  terraformTopics,
  topicNamesInCode,
} from './code-facts.ts';

const ARCH = 'docs/architecture.md';
const CONFIG = 'docs/configuration.md';

test('every environment variable the code reads is in docs/configuration.md with its default, and every row is read', (t) => {
  const reads = envReads();
  const table = new Map<string, string>();
  for (const cells of tableAfterHeader(CONFIG, '# Configuration')) {
    const name = codeSpans(cells[0] ?? '')[0];
    if (name) table.set(name, cells[2] ?? '');
  }
  const problems: string[] = [];
  const codeNames = new Set(reads.map((r) => r.name));
  for (const name of [...codeNames].sort()) {
    if (!table.has(name)) {
      const files = [...new Set(reads.filter((r) => r.name === name).map((r) => r.file))].join(', ');
      problems.push(`env var ${name} is read by ${files} but has no row in ${CONFIG}`);
    }
  }
  for (const name of table.keys()) {
    if (!codeNames.has(name)) problems.push(`${CONFIG} documents env var ${name}, which no code reads`);
  }
  for (const r of reads) {
    const cell = table.get(r.name);
    if (r.fallback === undefined || cell === undefined) continue;
    const documented = r.fallback === '' ? (/\bempty\b/.test(cell) ? '' : cell) : codeSpans(cell)[0];
    if (documented !== r.fallback) {
      problems.push(
        `env var ${r.name}: default ${JSON.stringify(r.fallback)} in ${r.file}, ${JSON.stringify(cell)} in ${CONFIG}`,
      );
    }
  }
  // Any VARIABLE_NAME written in code style anywhere in the docs must still exist: read as an env var, or a
  // name in production source (enum symbols, compatibility levels, KafkaJS events) or a Kafka protocol error.
  const source = [...sourceFiles(), 'node_modules/kafkajs/src/protocol/error.js'].map(read).join('\n');
  for (const doc of docFiles()) {
    for (const span of codeSpans(read(doc))) {
      const name = /^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=\S*)?$/.exec(span)?.[1];
      if (name && !codeNames.has(name) && !new RegExp(`\\b${name}\\b`).test(source)) {
        problems.push(`${doc} names ${name}, which no code reads or defines`);
      }
    }
  }
  t.deepEqual([...new Set(problems)], []);
});

/** Rows of the first table under the heading `heading` (any level). */
function tableAfterHeader(doc: string, heading: string): string[][] {
  return tableAfter(doc, heading);
}

test('every metric the code registers is in the metrics table of docs/architecture.md section 9, and back', (t) => {
  const code = metricNames();
  const documented = new Map<string, string>(); // name -> service row
  for (const cells of tableAfter(ARCH, '## 9. Observability')) {
    for (const span of codeSpans(cells[1] ?? '')) {
      if (/^[a-z][a-z0-9]*_[a-z0-9_]+$/.test(span)) documented.set(span, cells[0] ?? '');
    }
  }
  const problems: string[] = [];
  for (const [name, file] of code) {
    const row = documented.get(name);
    if (name.startsWith('*')) {
      if (![...documented.keys()].some((d) => metricRegistered(new Map([[name, file]]), d))) {
        problems.push(
          `metrics <service>${name.slice(1)} are registered by ${file} but not listed in ${ARCH} section 9`,
        );
      }
    } else if (row === undefined) {
      problems.push(`metric ${name} is registered by ${file} but not listed in ${ARCH} section 9`);
    } else if (!name.startsWith(`${row}_`)) {
      problems.push(`metric ${name} is listed in the ${row} row of ${ARCH} section 9`);
    }
  }
  for (const name of documented.keys()) {
    if (!metricRegistered(code, name)) problems.push(`${ARCH} section 9 lists metric ${name}, which no code registers`);
  }
  // Metric names quoted anywhere else in the docs (SLOs, alerts, component docs) must exist too.
  for (const doc of docFiles()) {
    for (const span of codeSpans(read(doc))) {
      const name = /^((?:ingest|stream|projections)_[a-z0-9_]+_(?:total|seconds|bytes))(?:\{.*\})?$/.exec(span)?.[1];
      if (name && !metricRegistered(code, name)) problems.push(`${doc} names metric ${name}, which no code registers`);
    }
  }
  t.deepEqual([...new Set(problems)], []);
});

test('every problem code of the API is in the problem code table of docs/components/ingest.md with its status, and back', (t) => {
  const doc = 'docs/components/ingest.md';
  const code = problemCodes();
  t.true(code.size > 10, 'problem codes parsed from ingest/src/http/problem.ts');
  const documented = new Map<string, string>();
  for (const cells of tableAfter(doc, '## Problem codes')) {
    const name = codeSpans(cells[0] ?? '')[0];
    if (name) documented.set(name, cells[1] ?? '');
  }
  const problems: string[] = [];
  for (const [name, status] of code) {
    const cell = documented.get(name);
    if (cell === undefined)
      problems.push(`problem code ${name} (${status}) is in ingest/src/http/problem.ts but not in ${doc}`);
    else if (cell !== String(status))
      problems.push(`problem code ${name}: status ${status} in the code, ${cell} in ${doc}`);
  }
  for (const name of documented.keys()) {
    if (!code.has(name)) problems.push(`${doc} documents problem code ${name}, which the code does not have`);
  }
  t.deepEqual(problems, []);
});

test('every HTTP route a service serves is in its component doc, and every route the docs name exists', (t) => {
  const routes = httpRoutes();
  t.true(routes.length > 10, 'routes parsed from the services');
  const problems: string[] = [];
  const documentedIn = (service: Service): Set<string> => {
    const out = new Set<string>();
    for (const span of codeSpans(read(`docs/components/${service}.md`))) {
      const m = /^(GET|POST|PUT|PATCH|DELETE) (\/[^\s?]*)(\?\S*)?$/.exec(span);
      if (m) out.add(normalizeRoute(m[1] as string, m[2] as string));
      else if (/^\/[\w/{}:.-]*$/.test(span)) out.add(normalizeRoute('GET', span));
    }
    return out;
  };
  for (const { service, route, file } of routes) {
    if (!documentedIn(service).has(route)) {
      problems.push(`${service} serves ${route} (${file}) but docs/components/${service}.md does not name it`);
    }
  }
  // Routes the docs name on the services' own paths must exist (other APIs, like the registry's, are not ours).
  const all = new Set(routes.map((r) => r.route));
  const ownRoots = new Set(routes.map((r) => r.route.split(' ')[1]?.split('/')[1]));
  for (const doc of docFiles()) {
    for (const span of codeSpans(read(doc))) {
      const m = /^(GET|POST|PUT|PATCH|DELETE) (\/[^\s?]*)/.exec(span);
      if (m && ownRoots.has(m[2]?.split('/')[1]) && !all.has(normalizeRoute(m[1] as string, m[2] as string))) {
        problems.push(`${doc} names ${m[1]} ${m[2]}, which no service serves`);
      }
    }
  }
  t.deepEqual([...new Set(problems)], []);
});

test("the Kafka topics of docs/architecture.md 10.1 are the code's and terraform's, with production partitions and configs", (t) => {
  const applicationId = 'votestream-stream';
  const code = topicNamesInCode(applicationId);
  const tf = terraformTopics(applicationId);
  t.true(code.size >= 8 && tf.size >= 8, 'topics parsed from the code and terraform');
  const rows = tableAfter(ARCH, '### 10.1 Kafka topics');
  const problems: string[] = [];
  const documented = new Set<string>();
  const hours = (ms: string) => Number(ms) / 3_600_000;
  for (const cells of rows) {
    const name = codeSpans(cells[0] ?? '')[0] as string;
    documented.add(name);
    const prod = tf.get(name);
    if (!prod) continue;
    const partitionsVar = /^var\.(\w+)$/.exec(prod.partitions)?.[1];
    const partitions = partitionsVar ? terraformDefault(partitionsVar) : prod.partitions;
    const docPartitions = /^\d+/.exec(cells[3] ?? '')?.[0];
    if (docPartitions !== partitions) {
      problems.push(`topic ${name}: ${docPartitions} partitions in ${ARCH}, ${partitions} in terraform`);
    }
    const cleanup = prod.config['cleanup.policy']?.replaceAll('"', '');
    if (!(cells[4] ?? '').startsWith(cleanup ?? '?')) {
      problems.push(`topic ${name}: cleanup ${JSON.stringify(cells[4])} in ${ARCH}, ${cleanup} in terraform`);
    }
    const retention = prod.config['retention.ms'];
    if (retention !== undefined) {
      const ms =
        /^"(\d+)"$/.exec(retention)?.[1] ??
        (/votes_retention_ms/.test(retention)
          ? String(Number(terraformDefault('votes_retention_hours')) * 3_600_000)
          : undefined);
      const docHours =
        /(\d+) h\b/.exec(cells[4] ?? '')?.[1] ?? String(Number(/(\d+) d\b/.exec(cells[4] ?? '')?.[1]) * 24);
      if (ms === undefined || hours(ms) !== Number(docHours)) {
        problems.push(`topic ${name}: retention ${JSON.stringify(cells[4])} in ${ARCH}, ${ms} ms in terraform`);
      }
    }
  }
  for (const name of code) {
    if (!documented.has(name)) problems.push(`topic ${name} is created by the code but not listed in ${ARCH} 10.1`);
    if (!tf.has(name)) problems.push(`topic ${name} is created by the code but not by terraform/modules/kafka-topics`);
  }
  for (const name of documented) {
    if (!code.has(name)) problems.push(`${ARCH} 10.1 lists topic ${name}, which the code does not create`);
  }
  for (const name of tf.keys()) {
    if (!code.has(name)) problems.push(`terraform creates topic ${name}, which the code does not use`);
  }
  // Production adds configs the local stack leaves to the broker; the doc must say which.
  const arch = read(ARCH);
  for (const key of new Set([...tf.values()].flatMap((s) => Object.keys(s.config)))) {
    if (!arch.includes(key)) problems.push(`terraform sets topic config ${key}, which ${ARCH} does not mention`);
  }
  t.deepEqual(problems, []);
});

test("the CQL tables and columns of docs/architecture.md 10.2 are the migrations'", (t) => {
  const code = cqlTables();
  for (const m of read('libs/runtime/src/cql.ts').matchAll(
    /CREATE TABLE IF NOT EXISTS \$\{keyspace\}\.(\w+) \(([^`]*)\)`/g,
  )) {
    code.set(m[1] as string, new Set((m[2] as string).split(',').map((c) => c.trim().split(/\s+/)[0] as string)));
  }
  t.true(code.size >= 4, 'tables parsed from migrations/cql and the migrations runner');
  const problems: string[] = [];
  const documented = new Set<string>();
  for (const cells of tableAfter(ARCH, '### 10.2 CQL tables')) {
    const name = codeSpans(cells[0] ?? '')[0] as string;
    documented.add(name);
    const cols = new Set<string>();
    for (const span of codeSpans(cells[1] ?? '')) for (const id of span.match(/[a-z_]+/g) ?? []) cols.add(id);
    for (const part of (cells[2] ?? '').split(/,(?![^<]*>)/)) {
      const id = /^\s*([a-z_]+)/.exec(part)?.[1];
      if (id) cols.add(id);
    }
    const real = code.get(name);
    if (!real) continue;
    for (const c of real)
      if (!cols.has(c)) problems.push(`CQL column ${name}.${c} is in the migrations but not in ${ARCH} 10.2`);
    for (const c of cols)
      if (!real.has(c)) problems.push(`${ARCH} 10.2 lists column ${name}.${c}, which no migration creates`);
  }
  for (const name of code.keys())
    if (!documented.has(name)) problems.push(`CQL table ${name} is not listed in ${ARCH} 10.2`);
  for (const name of documented)
    if (!code.has(name)) problems.push(`${ARCH} 10.2 lists table ${name}, which no migration creates`);
  t.deepEqual(problems, []);
});

test('the Redis key families of docs/architecture.md 10.3 are the ones the code builds', (t) => {
  const code = redisKeyFamilies();
  t.true(code.size >= 5, 'key families parsed from the code');
  const documented = new Set<string>();
  for (const cells of tableAfter(ARCH, '### 10.3 Redis keys')) {
    for (const span of codeSpans(cells[0] ?? '')) {
      const family = /^vs:([a-z][a-z-]*):/.exec(span)?.[1];
      if (family) documented.add(family);
    }
  }
  const problems: string[] = [];
  for (const [family, file] of code) {
    if (!documented.has(family))
      problems.push(`Redis key family ${family}: is built by ${file} but not listed in ${ARCH} 10.3`);
  }
  for (const family of documented) {
    if (!code.has(family)) problems.push(`${ARCH} 10.3 lists Redis key family ${family}:, which no code builds`);
  }
  t.deepEqual(problems, []);
});

test("the MQTT topics and payload fields of docs/architecture.md 10.4 are the code's", (t) => {
  const code = mqttTopics();
  t.true(code.size >= 2, 'topics parsed from libs/read-models');
  const problems: string[] = [];
  const documented = new Set<string>();
  for (const cells of tableAfter(ARCH, '### 10.4 MQTT topics')) {
    const topic = codeSpans(cells[0] ?? '')[0] as string;
    documented.add(topic);
    const kind = code.get(topic);
    if (!kind) continue;
    const type = `Live${kind[0]?.toUpperCase()}${kind.slice(1)}`;
    // The cell lists the payload's fields in the first parentheses, then the fields of each array element type
    // (`windows: SeriesWindow[]`) in the next ones.
    const groups = [...(cells[1] ?? '').matchAll(/\(([^)]*)\)/g)].map(
      (m) => new Set((m[1] as string).split(/[\s,]+/).filter((f) => f !== '')),
    );
    const types = [type, ...interfaceFieldTypes(type).flatMap(([, ft]) => /^(\w+)\[\]$/.exec(ft)?.[1] ?? [])];
    for (const [i, ty] of types.entries()) {
      const fields = interfaceFields(ty);
      const listed = groups[i] ?? new Set<string>();
      if (fields.length === 0)
        problems.push(`payload type ${ty} of ${topic} not found in libs/read-models/src/types.ts`);
      for (const f of fields)
        if (!listed.has(f)) problems.push(`${topic}: field ${f} of ${ty} is not listed in ${ARCH} 10.4`);
      for (const f of listed)
        if (!fields.includes(f)) problems.push(`${ARCH} 10.4 lists field ${f} of ${topic}, which ${ty} does not have`);
    }
  }
  for (const topic of code.keys())
    if (!documented.has(topic)) problems.push(`MQTT topic ${topic} is not listed in ${ARCH} 10.4`);
  for (const topic of documented)
    if (!code.has(topic)) problems.push(`${ARCH} 10.4 lists MQTT topic ${topic}, which no code publishes`);
  t.deepEqual(problems, []);
});
