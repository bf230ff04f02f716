// Checks the ava config's test file globs (package.json "ava.files"), which decide what `npm test` runs on
// Node 20 and again on Node 24: a glob that matches no file fails (ava would drop it silently), and so does a
// *.test.ts file that no glob matches (it would never run). Prints the number of files per glob.
import { readdirSync, readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const globs = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).ava.files;

/** `*` = one path segment's characters, `**\/` = any number of directories (the only forms the config uses). */
function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith('**/', i)) {
      re += '(?:[^/]+/)*';
      i += 2;
    } else if (glob[i] === '*') re += '[^/]*';
    else re += glob[i].replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter(
  (f) => f.endsWith('.test.ts') && !f.split('/').some((part) => part === 'node_modules' || part.startsWith('.')),
);
const problems = [];
const matched = new Set();
for (const glob of globs) {
  if (glob.startsWith('!')) continue;
  const re = globToRegExp(glob);
  const hits = files.filter((f) => re.test(f));
  for (const f of hits) matched.add(f);
  console.log(`${String(hits.length).padStart(3)}  ${glob}`);
  if (hits.length === 0) problems.push(`the ava glob ${glob} matches no test file`);
}
for (const f of files) if (!matched.has(f)) problems.push(`${f} is matched by no ava glob: npm test never runs it`);
console.log(`${matched.size} test files`);
if (problems.length > 0) {
  for (const p of problems) console.error(`error: ${p}`);
  process.exit(1);
}
