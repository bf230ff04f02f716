// One table of problem codes: ingest/src/http/problem.ts. The OpenAPI document takes its `code` enum from it and
// names codes per response; the SDK (which must not import ingest at runtime) keeps its own list of the vote
// endpoint's codes. This pure test (no stack) fails when any of the three drifts from the table.
import { voteErrorCodes } from '@votestream/sdk';
import test from 'ava';
import { openApiDocument } from '../../src/http/openapi.ts';
import { problemCodes, problemStatus } from '../../src/http/problem.ts';

interface ProblemResponse {
  status: number;
  codes: string[];
}

/** Every problem+json response of an operation: its HTTP status and the codes its description names. */
function problemResponses(operation: { responses: Record<string, { description?: string; content?: object }> }) {
  const out: ProblemResponse[] = [];
  for (const [status, response] of Object.entries(operation.responses)) {
    if (!response.content || !('application/problem+json' in response.content)) continue;
    const m = /Codes: ([a-z_, ]+)\.$/.exec(response.description ?? '');
    if (m?.[1] === undefined) throw new Error(`response ${status} names no codes: ${response.description}`);
    out.push({ status: Number(status), codes: m[1].split(', ') });
  }
  return out;
}

const operations = Object.entries(openApiDocument.paths).flatMap(([path, methods]) =>
  Object.entries(methods as Record<string, { responses: Record<string, { description?: string }> }>).map(
    ([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation }),
  ),
);

test('the OpenAPI Problem.code enum is exactly the problem table', (t) => {
  t.deepEqual(openApiDocument.components.schemas.Problem.properties.code.enum, problemCodes);
});

test('every problem response of the OpenAPI document names table codes under the status the table gives them', (t) => {
  let checked = 0;
  for (const { name, operation } of operations) {
    for (const { status, codes } of problemResponses(operation)) {
      for (const code of codes) {
        t.true((problemCodes as string[]).includes(code), `${name} ${status}: ${code} is not in problem.ts`);
        t.is(
          problemStatus(code as (typeof problemCodes)[number]),
          status,
          `${name}: ${code} is documented as ${status}`,
        );
        checked++;
      }
    }
  }
  t.true(checked >= 30, `problem codes checked: ${checked}`);
});

test("the SDK's vote error codes are exactly the codes the OpenAPI document gives the vote endpoint", (t) => {
  const vote = operations.find((o) => o.name === 'POST /v1/polls/{pollId}/votes');
  if (vote === undefined) return t.fail('no vote operation in the OpenAPI document');
  const documented = problemResponses(vote.operation).flatMap((r) => r.codes);
  t.deepEqual([...voteErrorCodes].sort(), [...documented].sort());
  for (const code of voteErrorCodes) t.true((problemCodes as string[]).includes(code), code);
});
