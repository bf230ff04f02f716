// Stages what the production image holds, minus node_modules, into a directory: the package manifests and
// lock file (so `npm ci --omit=dev` there installs exactly the production dependencies), the build output
// (`npm run build` first), the Avro contracts and the CQL migrations. The Dockerfile's build stage runs it and
// its runtime stage copies the result; tests/system/from-build.test.ts stages the same way and runs the
// services from it, so what the test proves is what the image contains.
//   node --import tsx scripts/stage-runtime.ts <dest>
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Entry points of the image (relative to its working directory /app). */
export const runtimeEntries = {
  ingest: 'ingest/dist/main.js',
  stream: 'stream/dist/main.js',
  projections: 'projections/dist/main.js',
  topics: 'dist/topics.js',
  migrate: 'dist/migrate.js',
  schemasRegister: 'schemas/dist/cli/register.js',
  healthcheck: 'dist/healthcheck.js',
} as const;

function workspaces(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces: string[] };
  // Patterns are `dir` or `dir/*` (fs.globSync is Node 22+; this runs on 20 too).
  return pkg.workspaces
    .flatMap((pattern) =>
      pattern.endsWith('/*')
        ? readdirSync(join(root, pattern.slice(0, -2)), { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => join(pattern.slice(0, -2), e.name))
        : [pattern],
    )
    .sort();
}

/** Copies the runtime tree of the repo at `root` into `dest`; fails if the build output is missing or stale. */
export function stageRuntime(dest: string, root = repoRoot): string[] {
  const copied: string[] = [];
  const copy = (rel: string) => {
    cpSync(join(root, rel), join(dest, rel), { recursive: true });
    copied.push(rel);
  };
  mkdirSync(dest, { recursive: true });
  copy('package.json');
  copy('package-lock.json');
  for (const ws of workspaces(root)) {
    copy(join(ws, 'package.json'));
    if (existsSync(join(root, ws, 'src')) && ws !== 'bench' && ws !== 'tests') {
      const dist = join(ws, 'dist');
      if (!existsSync(join(root, dist))) throw new Error(`stage: ${dist} is missing: run npm run build first`);
      assertFresh(root, join(ws, 'src'), dist);
      copy(dist);
    }
  }
  for (const f of readdirSync(join(root, 'schemas/generated'))) {
    if (f.endsWith('.js') || f.endsWith('.js.map')) copy(join('schemas/generated', f));
  }
  if (!copied.some((f) => f.startsWith('schemas/generated/'))) throw new Error('stage: schemas/generated/*.js missing');
  copy('schemas/avro');
  copy('schemas/history');
  copy('migrations');
  copy('dist');
  copy('scripts/patch-kafkajs.mjs'); // run after the runtime's npm ci (Dockerfile)
  return copied;
}

function newestMtime(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => statSync(join(dir, f)).mtimeMs),
  );
}

/** The build is stale when a source file is newer than every output file: say so instead of shipping it. */
function assertFresh(root: string, src: string, dist: string): void {
  if (newestMtime(join(root, src)) > newestMtime(join(root, dist))) {
    throw new Error(`stage: ${src} changed after ${dist} was built: run npm run build first`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dest = process.argv[2];
  if (dest === undefined) throw new Error('usage: stage-runtime.ts <dest>');
  console.log(`staged ${stageRuntime(dest).length} paths into ${dest}`);
}
