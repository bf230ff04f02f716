// The offline check (avsc resolution + rule walker) and the registry (Apicurio, Confluent API, FULL_TRANSITIVE on the
// subject) must agree on every change in this table. Each case registers its versions under its own subject.
import test from 'ava';
import type { Rule } from '../src/compat.ts';
import { checkAgainstHistory } from '../src/compat.ts';
import { loadHistory } from '../src/contracts.ts';
import type { AvroComplexSchemaJson, AvroFieldJson } from '../src/index.ts';
import { compatibilityPolicy } from '../src/index.ts';
import { registerRaw, setCompatibility, uniqueSubjectPrefix } from './fixtures.ts';

const voteCast = loadHistory('io.votestream.VoteCast')[0]!.schema;
const tally = loadHistory('io.votestream.TallyUpdate')[0]!.schema;
const small: AvroComplexSchemaJson = {
  type: 'record',
  name: 'Small',
  namespace: 'io.votestream.test',
  doc: 'A record for cases the contracts cannot show (an enum without a default).',
  fields: [
    { name: 'id', type: 'string', doc: 'Id.' },
    {
      name: 'color',
      type: { type: 'enum', name: 'Color', symbols: ['RED', 'GREEN'], doc: 'No default.' },
      doc: 'Color.',
    },
  ],
};

type Edit = (s: AvroComplexSchemaJson) => void;
const edit = (base: AvroComplexSchemaJson, f: Edit): AvroComplexSchemaJson => {
  const copy = structuredClone(base);
  f(copy);
  return copy;
};
const recordAt = (s: AvroComplexSchemaJson, field: string): AvroComplexSchemaJson =>
  s.fields!.find((f) => f.name === field)!.type as AvroComplexSchemaJson;
const field = (s: AvroComplexSchemaJson, name: string): AvroFieldJson => s.fields!.find((f) => f.name === name)!;
const drop = (s: AvroComplexSchemaJson, name: string) => {
  s.fields = s.fields!.filter((f) => f.name !== name);
};

interface Case {
  title: string;
  /** Versions already registered, oldest first. */
  history: AvroComplexSchemaJson[];
  next: AvroComplexSchemaJson;
  compatible: boolean;
  /** For a breaking change: the rule and field path the offline check must name. */
  rule?: Rule;
  path?: string;
}

const cases: Case[] = [
  {
    title: 'adding a nullable field with default null',
    history: [voteCast],
    next: edit(voteCast, (s) =>
      recordAt(s, 'evidence').fields!.push({ name: 'asn', type: ['null', 'long'], default: null, doc: 'AS number.' }),
    ),
    compatible: true,
  },
  {
    title: 'adding a field without a default',
    history: [voteCast],
    next: edit(voteCast, (s) => s.fields!.push({ name: 'region', type: 'string', doc: 'Region.' })),
    compatible: false,
    rule: 'reader-field-without-default',
    path: 'region',
  },
  {
    title: 'removing a field that has a default',
    history: [voteCast],
    next: edit(voteCast, (s) => drop(recordAt(s, 'evidence'), 'userAgent')),
    compatible: true,
  },
  {
    title: 'removing a field without a default',
    history: [voteCast],
    next: edit(voteCast, (s) => drop(recordAt(s, 'evidence'), 'networkPrefix')),
    compatible: false,
    rule: 'reader-field-without-default',
    path: 'evidence.networkPrefix',
  },
  {
    title: 'renaming a field without an alias',
    history: [voteCast],
    next: edit(voteCast, (s) => {
      field(s, 'voterId').name = 'voter';
    }),
    compatible: false,
    rule: 'reader-field-without-default',
    path: 'voter',
  },
  {
    title: 'renaming a field with an alias (old consumers still look for the old name)',
    history: [voteCast],
    next: edit(voteCast, (s) => {
      Object.assign(field(s, 'voterId'), { name: 'voter', aliases: ['voterId'] });
    }),
    compatible: false,
    rule: 'reader-field-without-default',
    path: 'voterId',
  },
  {
    title: 'changing a field type from long to string',
    history: [tally],
    next: edit(tally, (s) => {
      field(s, 'total').type = 'string';
    }),
    compatible: false,
    rule: 'type-mismatch',
    path: 'total',
  },
  {
    title: 'widening int to long (backward compatible, not forward)',
    history: [tally],
    next: edit(tally, (s) => {
      field(s, 'source').type = 'long';
    }),
    compatible: false,
    rule: 'type-mismatch',
    path: 'source',
  },
  {
    title: 'changing a map value type inside an array of records',
    history: [tally],
    next: edit(tally, (s) => {
      const windows = field(s, 'windows').type as AvroComplexSchemaJson;
      const counts = (windows.items as AvroComplexSchemaJson).fields!.find((f) => f.name === 'counts')!;
      counts.type = { type: 'map', values: 'string' };
    }),
    compatible: false,
    rule: 'type-mismatch',
    path: 'windows[].counts{}',
  },
  {
    title: 'adding a symbol to an enum that has a default',
    history: [voteCast],
    next: edit(voteCast, (s) => {
      const challenge = recordAt(s, 'evidence').fields!.find((f) => f.name === 'challenge')!
        .type as AvroComplexSchemaJson;
      challenge.symbols = [...challenge.symbols!, 'EXEMPT'];
    }),
    compatible: true,
  },
  {
    title: 'adding a symbol to an enum without a default',
    history: [small],
    next: edit(small, (s) => {
      (field(s, 'color').type as AvroComplexSchemaJson).symbols!.push('BLUE');
    }),
    compatible: false,
    rule: 'enum-symbol-unknown-to-reader',
    path: 'color',
  },
  {
    title: 'making a required field nullable',
    history: [voteCast],
    next: edit(voteCast, (s) => {
      field(s, 'optionId').type = ['null', 'string'];
    }),
    compatible: false,
    rule: 'union-branch-unreadable',
    path: 'optionId',
  },
  {
    title: 'changing only docs',
    history: [tally],
    next: edit(tally, (s) => {
      field(s, 'total').doc = 'Sum of totals, always equal to the sum of the map values.';
    }),
    compatible: true,
  },
  {
    // Transitivity: v1 has `note` without a default, v2 gives it one (fine), v3 drops it. v3 is compatible with v2
    // but a consumer still on v1 cannot read it: FULL would accept, FULL_TRANSITIVE must not.
    title: 'dropping a field that only the latest version gave a default (transitive)',
    history: [
      edit(small, (s) => s.fields!.push({ name: 'note', type: 'string', doc: 'Note.' })),
      edit(small, (s) => s.fields!.push({ name: 'note', type: 'string', default: '', doc: 'Note.' })),
    ],
    next: small,
    compatible: false,
    rule: 'reader-field-without-default',
    path: 'note',
  },
];

const prefix = uniqueSubjectPrefix('compat');

cases.forEach((c, i) => {
  test(`${c.compatible ? 'allowed' : 'refused'} by both the offline check and the registry: ${c.title}`, async (t) => {
    const history = c.history.map((schema, v) => ({ version: v + 1, path: `case ${i} v${v + 1}`, schema }));
    const issues = checkAgainstHistory(c.next, history);
    t.is(issues.length === 0, c.compatible, `offline check: ${JSON.stringify(issues, null, 1)}`);
    if (!c.compatible) {
      t.true(
        issues.some((x) => x.rule === c.rule && x.path === c.path),
        `expected rule ${c.rule} at ${c.path}, got ${issues.map((x) => `${x.rule}@${x.path}`).join(', ')}`,
      );
      for (const x of issues) {
        t.true(x.message.length > 0 && x.fix.length > 0);
      }
    }

    const subject = `${prefix}case-${i}`;
    await setCompatibility(subject, compatibilityPolicy);
    for (const old of c.history) {
      const r = await registerRaw(subject, old);
      t.is(r.status, 200, `registering history: ${r.body}`);
    }
    const verdict = await registerRaw(subject, c.next);
    t.is(verdict.status, c.compatible ? 200 : 409, `registry: ${verdict.body}`);
  });
});
