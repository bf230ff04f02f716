/**
 * A TCP proxy the test controls, in front of a real service: to cut the network in the middle of a request
 * without touching the shared service.
 *   pass      forward both ways
 *   blackhole accept and read, forward nothing (a request that never arrives)
 *   drop-responses forward the request upstream, then cut the client as soon as the upstream answers
 *             (the server did the work; the client never hears about it)
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'drop-responses';

export interface TcpProxy {
  readonly port: number;
  mode: ProxyMode;
  /** Number of upstream answers the proxy swallowed in drop-responses mode. */
  readonly droppedResponses: number;
  /** Resolves when the next response is dropped. */
  nextDrop(): Promise<void>;
  /** Destroys every open connection (both sides). */
  cutAll(): void;
  /** Points the proxy at another upstream port (the restarted service). */
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let target = upstreamPort;
  let dropped = 0;
  let dropWaiters: Array<() => void> = [];
  const proxy = {
    mode: 'pass' as ProxyMode,
  };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (proxy.mode === 'blackhole') {
      client.resume(); // read and discard
      return;
    }
    const dropResponses = proxy.mode === 'drop-responses';
    const upstream = connect(target, upstreamHost);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    if (dropResponses) {
      upstream.once('data', () => {
        dropped++;
        client.resetAndDestroy();
        upstream.destroy();
        const waiters = dropWaiters;
        dropWaiters = [];
        for (const w of waiters) w();
      });
    } else {
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return Object.assign(proxy, {
    port: address.port,
    get droppedResponses() {
      return dropped;
    },
    nextDrop: () => new Promise<void>((resolve) => dropWaiters.push(resolve)),
    cutAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    retarget(port: number) {
      target = port;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
