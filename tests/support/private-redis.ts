// Private redis-server processes for tests: TLS with a throwaway CA made by openssl, optionally a 3-master
// cluster. Every process is started on ports found free, in a temp dir, and killed by the returned stop().
// Never touches the shared stack's Redis on 6379.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from '@votestream/devstack';
import { withTimeout } from '@votestream/runtime';

const run = promisify(execFile);

export interface TlsMaterial {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A CA and a server certificate for 127.0.0.1 / localhost signed by it (both EC P-256, 1 day). */
export async function makeTlsMaterial(): Promise<TlsMaterial> {
  const dir = await mkdtemp(join(tmpdir(), 'vs-redis-tls-'));
  const f = (n: string) => join(dir, n);
  await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-sha256',
    '-days',
    '1',
    '-subj',
    '/CN=votestream test CA',
    '-out',
    f('ca.crt'),
  ]);
  await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('server.key')]);
  await run('openssl', ['req', '-new', '-key', f('server.key'), '-subj', '/CN=127.0.0.1', '-out', f('server.csr')]);
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-sha256',
    '-extfile',
    f('ext.cnf'),
    '-out',
    f('server.crt'),
  ]);
  return { dir, caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key') };
}

async function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port that is free, and whose cluster bus port (+10000) is free too. */
async function freePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair found');
}

async function waitForPing(args: string[], deadlineMs = 15_000): Promise<void> {
  await eventually(
    `redis-server to answer ${args.join(' ')}`,
    async () => ((await run('redis-cli', [...args, 'ping'])).stdout.trim() === 'PONG' ? true : undefined),
    deadlineMs,
  );
}

export interface PrivateRedis {
  tls: TlsMaterial;
  password: string;
  passwordFile: string;
  ports: number[];
  stop(): Promise<void>;
}

/**
 * Starts `nodes` redis-servers with TLS only (plain port 0), `requirepass`, and with `cluster` a cluster of
 * them (one master per node, all 16384 slots assigned) created with `redis-cli --cluster create`.
 */
export async function startPrivateRedis(opts: { cluster: boolean; nodes?: number }): Promise<PrivateRedis> {
  const tls = await makeTlsMaterial();
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const passwordFile = join(tls.dir, 'redis.password');
  await writeFile(passwordFile, `${password}\n`);
  const count = opts.cluster ? (opts.nodes ?? 3) : 1;
  const taken = new Set<number>();
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(
      procs.map((p) =>
        withTimeout(
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
          30_000,
          'a private redis-server exits after SIGKILL',
        ),
      ),
    );
    await rm(tls.dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort(taken);
      ports.push(port);
      const args = [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        tls.certFile,
        '--tls-key-file',
        tls.keyFile,
        '--tls-ca-cert-file',
        tls.caFile,
        '--tls-auth-clients',
        'no',
        '--requirepass',
        password,
        '--masterauth',
        password,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        tls.dir,
        '--dbfilename',
        `dump-${port}.rdb`,
      ];
      if (opts.cluster) {
        args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(tls.dir, `nodes-${port}.conf`));
        args.push('--tls-cluster', 'yes', '--tls-replication', 'yes', '--cluster-node-timeout', '5000');
      }
      procs.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    const cli = (port: number) => [
      '--tls',
      '--cacert',
      tls.caFile,
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '--no-auth-warning',
      '-a',
      password,
    ];
    for (const port of ports) await waitForPing(cli(port));
    if (opts.cluster) {
      const first = ports[0] as number;
      await run('redis-cli', [
        ...cli(first),
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ]);
      await eventually(
        'cluster_state:ok',
        async () =>
          (await run('redis-cli', [...cli(first), 'cluster', 'info'])).stdout.includes('cluster_state:ok')
            ? true
            : undefined,
        20_000,
        200,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { tls, password, passwordFile, ports, stop };
}
