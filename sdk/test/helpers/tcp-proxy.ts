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
  // The mode is looked at per chunk, not per connection: HTTP keep-alive reuses one connection for the challenge
  // fetch and the vote, and the test switches modes between the two.
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (proxy.mode === 'blackhole') {
      client.resume(); // read and discard
      return;
    }
    const upstream = connect(target, upstreamHost);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (chunk) => {
      if (proxy.mode !== 'blackhole') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (proxy.mode === 'pass') {
        client.write(chunk);
        return;
      }
      if (proxy.mode === 'drop-responses') {
        dropped++;
        const waiters = dropWaiters;
        dropWaiters = [];
        for (const w of waiters) w();
      }
      client.resetAndDestroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  // A getter must be defined on the object itself: Object.assign would copy its value once.
  return Object.defineProperties(proxy, {
    port: { value: address.port, enumerable: true },
    droppedResponses: { get: () => dropped, enumerable: true },
    nextDrop: { value: () => new Promise<void>((resolve) => dropWaiters.push(resolve)) },
    cutAll: {
      value: () => {
        for (const s of sockets) s.destroy();
        sockets.clear();
      },
    },
    retarget: {
      value: (port: number) => {
        target = port;
      },
    },
    close: {
      value: () => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    },
  }) as TcpProxy;
}
