// The runtime tree of the production image, staged on this machine (scripts/stage-runtime.ts + npm ci
// --omit=dev), for the tests that run the build: tests/system/from-build.test.ts, tests/system/compose.test.ts.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stackDir } from '@votestream/devstack';
import { stageRuntime } from '../../scripts/stage-runtime.ts';

const run = promisify(execFile);

/** nobody: when the tests run as root, `chmod a-w` only holds for another user. */
export const asUser: { uid?: number; gid?: number } = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

/** The secrets the local stack made, copied as a deployment would mount them (read-only files). */
export function secretsDirFor(dest: string, names: string[], dir = join(dest, 'secrets')): string {
  mkdirSync(dir);
  for (const name of names) {
    copyFileSync(join(stackDir, 'secrets', name), join(dir, name));
    chmodSync(join(dir, name), 0o444);
  }
  return dir;
}

/** A staged runtime tree with production dependencies only; what the image's /app holds. */
export async function stagedRuntime(): Promise<string> {
  const dest = await mkdtemp(join(tmpdir(), 'vs-runtime-'));
  stageRuntime(dest);
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dest,
    timeout: 5 * 60_000,
  });
  await run(process.execPath, ['scripts/patch-kafkajs.mjs'], { cwd: dest, timeout: 60_000 }); // as the Dockerfile
  return dest;
}
