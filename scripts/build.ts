// npm run build: compiles every workspace to JavaScript for production, where entry points run with plain
// `node --enable-source-maps <pkg>/dist/...js` (never tsx: it writes a cache under TMPDIR, which a read-only
// container does not have).
//
// Layout (same depth as the sources, so paths computed from import.meta.url stay right):
//   <workspace>/src/**/*.ts   -> <workspace>/dist/**/*.js (+ .js.map)   libs/*, schemas, ingest, stream, projections
//   schemas/generated/*.ts    -> schemas/generated/*.js                 (schemas/src imports ../generated/types.ts)
//   scripts/{migrate,topics,healthcheck}.ts -> dist/*.js               (init steps, HEALTHCHECK; ../migrations)
//   sdk/src                   -> sdk/dist (tsc: JavaScript + .d.ts, the published package)
// Each package.json `exports` points at dist; tsconfig.json `paths` maps `@votestream/*` to the sources for
// typecheck and for everything run under tsx (tests, demo), so the tests never see a stale build.
//
// Files are transpiled one by one (`isolatedModules` holds, so that is exact), with relative `.ts` imports
// rewritten to `.js`; type errors are `npm run typecheck`'s job, which CI runs before the build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Unit {
  from: string;
  to: string;
  /** Only these file names (default: every .ts file below `from`). */
  only?: string[];
  /** Remove `to` first (never for a directory that also holds sources). */
  clean: boolean;
}

const units: Unit[] = [
  ...[
    'libs/runtime',
    'libs/read-models',
    'libs/poll-catalog',
    'libs/devstack',
    'schemas',
    'ingest',
    'stream',
    'projections',
  ].map((pkg): Unit => ({ from: `${pkg}/src`, to: `${pkg}/dist`, clean: true })),
  { from: 'schemas/generated', to: 'schemas/generated', clean: false },
  { from: 'scripts', to: 'dist', only: ['healthcheck.ts', 'migrate.ts', 'topics.ts'], clean: true },
];

const compilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2023,
  module: ts.ModuleKind.ESNext,
  verbatimModuleSyntax: true,
  rewriteRelativeImportExtensions: true,
  sourceMap: true,
  inlineSources: true,
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

let files = 0;
for (const unit of units) {
  const from = join(root, unit.from);
  const to = join(root, unit.to);
  if (unit.clean) rmSync(to, { recursive: true, force: true });
  const sources = tsFiles(from).filter((f) => unit.only === undefined || unit.only.includes(relative(from, f)));
  if (unit.only !== undefined && sources.length !== unit.only.length) {
    throw new Error(`build: ${unit.from} lacks some of ${unit.only.join(', ')}`);
  }
  for (const source of sources) {
    const out = join(to, relative(from, source)).replace(/\.ts$/, '.js');
    const result = ts.transpileModule(readFileSync(source, 'utf8'), {
      compilerOptions,
      fileName: source,
      reportDiagnostics: true,
    });
    const errors = result.diagnostics ?? [];
    if (errors.length > 0) {
      throw new Error(
        `build: ${relative(root, source)}: ${errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ')}`,
      );
    }
    mkdirSync(dirname(out), { recursive: true });
    // transpileModule names the map after the input; point it at the output file instead.
    const code = result.outputText.replace(/\/\/# sourceMappingURL=.*$/m, `//# sourceMappingURL=${basename(out)}.map`);
    const map = JSON.parse(result.sourceMapText ?? '{}') as { file?: string; sources?: string[] };
    map.file = basename(out);
    map.sources = [relative(dirname(out), source)];
    writeFileSync(out, code);
    writeFileSync(`${out}.map`, JSON.stringify(map));
    files += 1;
  }
}

// The SDK is published: tsc emits JavaScript and declarations (its sources import only `mqtt` and each other).
rmSync(join(root, 'sdk/dist'), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'sdk/tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});
console.log(`build: ${files} files transpiled, sdk/dist emitted by tsc`);
