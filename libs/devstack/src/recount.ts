import { spawn } from 'node:child_process';
import { repoRoot } from './process.ts';

/** Runs one of the project's command-line tools (`node --import tsx <entry> ...args`) with `env` on top. */
export function runTool(
  entry: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      cwd: repoRoot,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

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
 * its exit code and JSON report.
 */
export async function runRecount(
  env: Record<string, string>,
  pollId: string,
  args: string[] = [],
  timeoutMs = 120_000,
): Promise<RecountRun> {
  const run = await runTool('stream/src/tools/recount.ts', ['--poll', pollId, '--json', ...args], env, timeoutMs);
  try {
    return { code: run.code, report: JSON.parse(run.stdout), stderr: run.stderr };
  } catch {
    throw new Error(`recount printed no JSON report (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
}

/** Runs `npm run audit -- <args>` (stream/src/tools/audit.ts); its output is stdout and stderr together. */
export async function runAudit(
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number | null; out: string }> {
  const run = await runTool('stream/src/tools/audit.ts', args, env);
  return { code: run.code, out: run.stdout + run.stderr };
}
