import { spawn } from 'node:child_process';
import { repoRoot } from './process.ts';

export interface RecountRun {
  /** 0: everything agrees on a final tally; 1: a difference; 2: bad usage or not final yet. */
  code: number | null;
  /** The JSON report (stream/src/recount/sources.ts RecountReport). */
  report: unknown;
  stderr: string;
}

/**
 * Runs `npm run recount` (stream/src/tools/recount.ts) as an operator would, with `env` on top of this
 * process's environment (the topic prefix, keyspace and stream rules of the system under test), and returns
 * its exit code and JSON report. Killed after `timeoutMs`.
 */
export function runRecount(
  env: Record<string, string>,
  pollId: string,
  args: string[] = [],
  timeoutMs = 120_000,
): Promise<RecountRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'stream/src/tools/recount.ts', '--poll', pollId, '--json', ...args],
      { cwd: repoRoot, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, report: JSON.parse(out), stderr: err });
      } catch {
        reject(new Error(`recount printed no JSON report (exit ${code}): ${out}\n${err}`));
      }
    });
  });
}
