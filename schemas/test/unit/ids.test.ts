// The id syntax of polls and options (schemas/src/ids.ts), the one definition ingest, the OpenAPI document and the
// live page use. Pure: no stack.
import test from 'ava';
import { expandedSchemas, idPattern, idSyntax, isId } from '../../src/index.ts';

const ids: Array<[string, boolean]> = [
  ['a', true],
  ['p-1', true],
  ['0', true],
  ['x'.repeat(64), true],
  ['', false],
  ['x'.repeat(65), false],
  ['A', false],
  ['a_b', false],
  ['a/b', false],
  ['{a}', false],
  ['a b', false],
  ['é', false],
  ['a\n', false],
];
for (const [id, ok] of ids) {
  test(`isId(${JSON.stringify(id.length > 10 ? `${id.slice(0, 4)}…(${id.length})` : id)}) is ${ok}`, (t) => {
    t.is(isId(id), ok);
  });
}

test('the pattern is the syntax, anchored; the Avro docs of the poll and option ids name the same syntax', (t) => {
  t.is(idPattern.source, `^${idSyntax}$`);
  const avro = JSON.stringify(expandedSchemas.PollEvent);
  t.true(avro.includes(`Stable id of the poll (${idSyntax}).`));
  t.true(avro.includes(`Stable id of the option within the poll (${idSyntax}).`));
});
