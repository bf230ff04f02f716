// npm run schemas:generate            writes schemas/generated/types.ts from schemas/avro/*.avsc
// npm run schemas:generate -- --check fails (exit 1) when the generated file is stale (run in CI)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { generateTypes } from '../codegen.ts';
import { generatedDir, loadContracts } from '../contracts.ts';

const check = process.argv.includes('--check');
const target = join(generatedDir, 'types.ts');
const text = generateTypes(loadContracts());
let current: string | null = null;
try {
  current = readFileSync(target, 'utf8');
} catch {
  current = null;
}
const shown = relative(process.cwd(), target);
if (check) {
  if (current !== text) {
    console.error(
      `schemas:generate --check: ${shown} is stale: it does not match schemas/avro/*.avsc.\n` +
        'Run `npm run schemas:generate` and commit the result.',
    );
    process.exit(1);
  }
  console.log(`schemas:generate --check: ${shown} is up to date`);
} else {
  mkdirSync(generatedDir, { recursive: true });
  if (current === text) console.log(`${shown} already up to date`);
  else {
    writeFileSync(target, text);
    console.log(`wrote ${shown}`);
  }
}
