// npm run schemas:check: offline, no registry needed. Checks every schemas/avro/*.avsc against every version in
// schemas/history under the project policy (FULL_TRANSITIVE), and lints the contracts. Exit 1 on any problem.
import { relative } from 'node:path';
import { checkContracts, formatReport } from '../workflow.ts';

const result = checkContracts();
const text = formatReport(result, (p) => relative(process.cwd(), p));
if (result.ok) console.log(text);
else {
  console.error(text);
  process.exit(1);
}
