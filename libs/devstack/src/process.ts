import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Children still running; killed when this process exits for any reason, so a crashed demo leaves no orphans. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL at once: a crash, for failure tests. */
  kill9(): Promise<number | string>;
}

/** How a service runs: from the sources under tsx (tests, demo), or a built `.js` entry under plain node. */
export interface BuiltRun {
  /** Working directory (e.g. a read-only copy of the build); entries are relative to it. */
  cwd: string;
  /** Only these variables (plus `env`) instead of this process's environment: what a container would get. */
  baseEnv?: Record<string, string>;
  /** Run as this user and group (when this process is root: makes a `chmod a-w` tree really read-only). */
  uid?: number;
  gid?: number;
}

export interface SpawnOptions {
  name: string;
  /** The script node runs (relative to the repo root, or to `built.cwd`). */
  entry?: string;
  env: Record<string, string>;
  logFile: string;
  built?: BuiltRun;
  /** With `built`: node's arguments exactly (e.g. a compose `command` without its `node`), instead of the entry. */
  nodeArgs?: string[];
  /** Node options before the entry, e.g. `--cpu-prof` for a benchmark's profile. */
  execArgv?: string[];
  /** Not node: this command and its arguments (e.g. compose's `sh -c ...` init), in `built.cwd`. */
  command?: string[];
}

interface Spawned {
  pid: number;
  exited: Promise<number | string>;
  gone: () => boolean;
  stop(graceMs?: number): Promise<number | string>;
  kill9(): Promise<number | string>;
}

/** The only place that spawns a service: a child with its output in `logFile`, killed if this process exits. */
function spawnLogged(opts: SpawnOptions): Spawned {
  if (!opts.command && opts.entry === undefined && opts.nodeArgs === undefined)
    throw new Error(`${opts.name}: no entry, nodeArgs or command to run`);
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const built = opts.built;
  const execArgv = opts.execArgv ?? [];
  const [file, args] = opts.command
    ? [opts.command[0] as string, opts.command.slice(1)]
    : [
        process.execPath,
        built
          ? (opts.nodeArgs ?? [...execArgv, '--enable-source-maps', opts.entry as string])
          : [...execArgv, '--import', 'tsx', opts.entry as string],
      ];
  const child: ChildProcess = spawn(file, args, {
    cwd: built?.cwd ?? repoRoot,
    env: { ...(built?.baseEnv ?? process.env), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(built?.uid !== undefined ? { uid: built.uid } : {}),
    ...(built?.gid !== undefined ? { gid: built.gid } : {}),
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  if (child.pid === undefined) throw new Error(`${opts.name}: spawn failed`);
  live.add(child);
  const exited = new Promise<number | string>((resolveExit) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolveExit(code ?? signal ?? 'unknown');
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const stop = async (graceMs = 15_000) => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    return exited;
  };
  const kill9 = async () => {
    if (!gone) child.kill('SIGKILL');
    return exited;
  };
  return { pid: child.pid, exited, gone: () => gone, stop, kill9 };
}

/**
 * Starts `node --import tsx <entry>` from the repo root with `env` on top of this process's environment (or,
 * with `built`, `node --enable-source-maps <entry>` in `built.cwd`, as production does), logs to `logFile`,
 * and resolves once `ready()` answers true (polled), or rejects, after killing the process, if it exits first
 * or `readyTimeoutMs` passes. Every service process of the tests, benchmarks and demo starts here.
 */
export async function startService(
  opts: SpawnOptions & { ready: () => Promise<boolean>; readyTimeoutMs?: number },
): Promise<ServiceProcess> {
  const child = spawnLogged(opts);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.gone())
      throw new Error(`${opts.name} exited with ${await child.exited} before it was ready (log: ${opts.logFile})`);
    if (await opts.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      await child.stop(2000);
      throw new Error(`${opts.name} was not ready within ${readyTimeoutMs} ms (log: ${opts.logFile})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const { pid, exited, stop, kill9 } = child;
  return { name: opts.name, pid, logFile: opts.logFile, exited, stop, kill9 };
}

/**
 * Runs a one-shot service (compose's `init`: topics, schemas, migrations) to its end, started as startService
 * starts one; resolves with its exit code, or kills it and rejects after `timeoutMs`.
 */
export async function runServiceOnce(opts: SpawnOptions & { timeoutMs?: number }): Promise<number | string> {
  const child = spawnLogged(opts);
  const timeoutMs = opts.timeoutMs ?? 300_000;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void child.kill9();
      reject(new Error(`${opts.name} did not finish within ${timeoutMs} ms (log: ${opts.logFile})`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([child.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A readiness probe: true when GET `url` answers 2xx. */
export function httpOk(url: string): () => Promise<boolean> {
  return async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  };
}

/** Ports handed out by freePort in this process: never twice. */
const handedOut = new Set<number>();
/** freePort picks below the kernel's ephemeral range, so an outgoing connection never takes the port before use. */
const freePortRange = { from: 20_000, to: 32_000 };

/**
 * A TCP port free on 127.0.0.1 now, for a service about to be started. Not the kernel's port 0 pick: that comes from
 * the ephemeral range (32768-60999 here), which every outgoing connection of every process (Kafka clients, the
 * services starting meanwhile) also draws from, so the port could be taken before the service binds it
 * (EADDRINUSE, seen with several services started one after another on a busy machine).
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const bindable = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = freePortRange.from + Math.floor(Math.random() * (freePortRange.to - freePortRange.from));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${freePortRange.from}-${freePortRange.to}`);
}
