// Checks the ava configs' test file globs, which decide what `npm test` runs: the unit tier
// (ava.unit.config.mjs, no stack, first) and the stack tier (package.json "ava.files", on Node 20 and again on
// Node 24). A glob that matches no file fails (ava would drop it silently), and so does a *.test.ts file that no
// tier runs (it would never run) or that both tiers run (it would run twice). Prints the number of files per glob.
import { readdirSync, readFileSync } from 'node:fs';
import unitConfig from '../ava.unit.config.mjs';

const root = new URL('..', import.meta.url).pathname;
const tiers = {
  unit: unitConfig.files,
  stack: JSON.parse(readFileSync(`${root}package.json`, 'utf8')).ava.files,
};

/** `*` = one path segment's characters, `**\/` = any number of directories, a trailing `**` = anything below. */
function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith('**/', i)) {
      re += '(?:[^/]+/)*';
      i += 2;
    } else if (glob.startsWith('**', i)) {
      re += '.*';
      i += 1;
    } else if (glob[i] === '*') re += '[^/]*';
    else re += glob[i].replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter(
  (f) => f.endsWith('.test.ts') && !f.split('/').some((part) => part === 'node_modules' || part.startsWith('.')),
);
const problems = [];
const tierOf = new Map(files.map((f) => [f, []]));
for (const [tier, globs] of Object.entries(tiers)) {
  const excluded = globs.filter((g) => g.startsWith('!')).map((g) => globToRegExp(g.slice(1)));
  const kept = files.filter((f) => !excluded.some((re) => re.test(f)));
  const matched = new Set();
  for (const glob of globs) {
    if (glob.startsWith('!')) continue;
    const re = globToRegExp(glob);
    const hits = kept.filter((f) => re.test(f));
    for (const f of hits) matched.add(f);
    console.log(`${String(hits.length).padStart(3)}  ${tier}  ${glob}`);
    if (hits.length === 0) problems.push(`the ${tier} tier's ava glob ${glob} matches no test file`);
  }
  for (const f of matched) tierOf.get(f)?.push(tier);
  console.log(`${matched.size} test files in the ${tier} tier`);
}
for (const [f, found] of tierOf) {
  if (found.length === 0) problems.push(`${f} is matched by no ava glob: npm test never runs it`);
  if (found.length > 1) problems.push(`${f} is in both tiers (${found.join(', ')}): npm test would run it twice`);
}
console.log(`${files.length} test files`);
if (problems.length > 0) {
  for (const p of problems) console.error(`error: ${p}`);
  process.exit(1);
}
