// The commands data engineers run: schemas:check on the repo and on a broken scratch copy, and the drift check.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { generateTypes } from '../../src/codegen.ts';
import { avroDir, generatedDir, historyDir, loadContracts } from '../../src/contracts.ts';
import { checkContracts, formatReport, releaseChangedContracts } from '../../src/workflow.ts';

const run = promisify(execFile);
const repoRoot = join(avroDir, '..', '..');

function scratchCopy(t: { teardown: (f: () => void) => void }): { avroDir: string; historyDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'schemas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(avroDir, join(dir, 'avro'), { recursive: true });
  cpSync(historyDir, join(dir, 'history'), { recursive: true });
  return { avroDir: join(dir, 'avro'), historyDir: join(dir, 'history') };
}

test('npm run schemas:check passes on the committed contracts', async (t) => {
  const { stdout } = await run('npm', ['run', '-s', 'schemas:check'], { cwd: repoRoot });
  // Every contract in schemas/avro, whatever their number.
  const contracts = readdirSync(avroDir).filter((f) => f.endsWith('.avsc')).length;
  t.true(contracts >= 5);
  t.regex(stdout, new RegExp(`schemas:check: ${contracts} contracts ok`));
});

test('npm run schemas:generate -- --check passes: the committed types are not stale', async (t) => {
  const { stdout } = await run('npm', ['run', '-s', 'schemas:generate', '--', '--check'], { cwd: repoRoot });
  t.regex(stdout, /is up to date/);
});

test('the generated types go stale when a contract changes, which the drift check compares against', (t) => {
  const dirs = scratchCopy(t);
  const committed = readFileSync(join(generatedDir, 'types.ts'), 'utf8');
  t.is(generateTypes(loadContracts(dirs.avroDir)), committed);
  const path = join(dirs.avroDir, 'TallyUpdate.avsc');
  const schema = JSON.parse(readFileSync(path, 'utf8'));
  schema.fields.push({ name: 'region', type: ['null', 'string'], default: null, doc: 'Region.' });
  writeFileSync(path, JSON.stringify(schema));
  const regenerated = generateTypes(loadContracts(dirs.avroDir));
  t.not(regenerated, committed);
  t.regex(regenerated, /region: string \| null;/);
});

test('a breaking change fails the check with the schema, the field, the rule and a fix', (t) => {
  const dirs = scratchCopy(t);
  const path = join(dirs.avroDir, 'VoteCast.avsc');
  const schema = JSON.parse(readFileSync(path, 'utf8'));
  schema.fields.find((f: { name: string }) => f.name === 'voterId').name = 'voter';
  writeFileSync(path, JSON.stringify(schema));
  const result = checkContracts(dirs);
  t.false(result.ok);
  const report = formatReport(result);
  t.regex(report, /FAIL io\.votestream\.VoteCast/);
  t.regex(
    report,
    /\[reader-field-without-default\] new schema reading v1 records: field `voter` \(string\) is new and has no default/,
  );
  t.regex(
    report,
    /\[reader-field-without-default\] v1 consumers reading new records: field `voterId` \(string\) is removed or renamed/,
  );
  t.regex(report, /It looks like a rename of `voterId` to `voter`/);
  t.regex(report, /fix: keep `voterId` and keep writing it/);
  // VoteDecision embeds VoteCast, so it breaks too, at vote.voterId.
  t.regex(report, /FAIL io\.votestream\.VoteDecision/);
  t.regex(report, /field `vote\.voterId`/);
});

test('a compatible change passes and is released as the next history version', (t) => {
  const dirs = scratchCopy(t);
  const path = join(dirs.avroDir, 'PollEvent.avsc');
  const schema = JSON.parse(readFileSync(path, 'utf8'));
  schema.fields.push({ name: 'source', type: ['null', 'string'], default: null, doc: 'Which admin tool sent it.' });
  writeFileSync(path, JSON.stringify(schema));
  const result = checkContracts(dirs);
  t.true(result.ok, formatReport(result));
  t.regex(
    formatReport(result),
    /ok {3}io\.votestream\.PollEvent: changed, compatible with v1; `npm run schemas:register` releases it as v2/,
  );
  const released = releaseChangedContracts(dirs);
  t.deepEqual(
    released.map((r) => [r.fullName, r.version]),
    [['io.votestream.PollEvent', 2]],
  );
  t.true(checkContracts(dirs).contracts.every((c) => !c.changed));
});

test('an undocumented field fails the lint part of the check', (t) => {
  const dirs = scratchCopy(t);
  const path = join(dirs.avroDir, 'TallyUpdate.avsc');
  const schema = JSON.parse(readFileSync(path, 'utf8'));
  schema.fields.push({ name: 'region', type: ['null', 'string'], default: null });
  writeFileSync(path, JSON.stringify(schema));
  const result = checkContracts(dirs);
  t.false(result.ok);
  t.regex(formatReport(result), /lint: field `region` has no "doc"/);
});
