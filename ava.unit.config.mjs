// The unit tier (`npm run test:unit`, the first test phase of `npm test`): every test that needs no running
// service (no Kafka, registry, CQL, Redis, MQTT), so it runs before the local stack comes up, in seconds.
// Convention: a workspace's stack-free tests live under `<workspace>/test/unit/` (or `libs/<lib>/test/unit/`);
// `tests/docs` (the docs-vs-code check) reads files only. The root package.json's ava config (the stack tier)
// excludes exactly these globs, so each test file runs in one tier (scripts/test-files.mjs checks it).
import { readFileSync } from 'node:fs';

const { ava } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

export const unitFiles = ['*/test/unit/**/*.test.ts', 'libs/*/test/unit/**/*.test.ts', 'tests/docs/**/*.test.ts'];

export default { ...ava, files: unitFiles };
