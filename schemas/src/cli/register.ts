// npm run schemas:register [-- --frozen] [--subject-prefix=P]
// 1. runs the offline check (refuses to go on if it fails);
// 2. releases: appends schemas/history/<subject>/v<N+1>.avsc for every contract whose working copy changed
//    (--frozen, for CI and production: fail instead, history must already be committed);
// 3. for every subject: sets compatibility (PUT /config/{subject}) and registers every history version in order, so a
//    fresh registry ends with the same versions the repo has, and an existing one just answers with known ids.
// Registry: SCHEMA_REGISTRY_URL (default http://127.0.0.1:8081/apis/ccompat/v7).
import { relative } from 'node:path';
import { checkContracts, formatReport, registerHistory, releaseChangedContracts } from '../workflow.ts';

const frozen = process.argv.includes('--frozen');
const prefixArg = process.argv.find((a) => a.startsWith('--subject-prefix='));
const subjectPrefix = prefixArg ? prefixArg.slice('--subject-prefix='.length) : '';
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const show = (p: string) => relative(process.cwd(), p);

const result = checkContracts();
if (!result.ok) {
  console.error(formatReport(result, show));
  console.error('schemas:register: nothing registered; fix the problems above first.');
  process.exit(1);
}
const released = releaseChangedContracts({ dryRun: frozen });
if (frozen && released.length > 0) {
  console.error(
    `schemas:register --frozen: the working copy of ${released.map((r) => r.fullName).join(', ')} is not in schemas/history. ` +
      'Run `npm run schemas:register` locally and commit schemas/history.',
  );
  process.exit(1);
}
for (const r of released) console.log(`released ${r.fullName} v${r.version} -> ${show(r.path)}`);
try {
  const registered = await registerHistory({ registryUrl, subjectPrefix });
  for (const r of registered) {
    console.log(
      `${r.subject}: compatibility ${r.compatibility}; versions ${r.versions.map((v) => `v${v.version}=id ${v.id}`).join(', ')}`,
    );
  }
} catch (err) {
  console.error(`schemas:register: ${(err as Error).message}`);
  process.exit(1);
}
