import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError, type Reader } from './config.ts';

/**
 * Limits every public HTTP server of votestream (ingest, projections) runs with, so a slow or greedy client holds
 * a bounded share of the process: Node's defaults allow 60 s for the headers, 300 s per request and any number of
 * connections.
 *
 * Ordering (checked at start-up): keepAliveTimeoutMs > the AWS ALB's idle timeout (60 s), so the ALB, not the
 * pod, closes idle connections (otherwise the ALB can send a request on a socket the pod is closing: a 502);
 * headersTimeoutMs > keepAliveTimeoutMs, the long-standing Node/ALB advice (the headers timer of a reused
 * connection must not fire before its keep-alive timer); requestTimeoutMs >= headersTimeoutMs (Node's rule).
 * Production values come from the env; tests set them low to watch a slowloris client being cut.
 */
export interface HttpServerLimits {
  /** Whole request (headers and body) from the first byte; Node answers 408 and closes when it passes. */
  requestTimeoutMs: number;
  /** Headers complete from the first byte of a request; Node answers 408 and closes when it passes. */
  headersTimeoutMs: number;
  /** Idle keep-alive connection closed after this. */
  keepAliveTimeoutMs: number;
  /** Open connections at most; further connections are closed at once by Node (`server.maxConnections`). */
  connectionsMax: number;
}

/** The ALB's default idle timeout: the pods' keep-alive must outlast it. */
export const albIdleTimeoutMs = 60_000;

/** Reads HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS, HTTP_CONNECTIONS_MAX. */
export function loadHttpServerLimits(r: Reader, defaults: { connectionsMax: number }): HttpServerLimits {
  const limits: HttpServerLimits = {
    keepAliveTimeoutMs: r.int('HTTP_KEEP_ALIVE_TIMEOUT_MS', 65_000, { min: 100, max: 600_000 }),
    headersTimeoutMs: r.int('HTTP_HEADERS_TIMEOUT_MS', 66_000, { min: 200, max: 600_000 }),
    requestTimeoutMs: r.int('HTTP_REQUEST_TIMEOUT_MS', 70_000, { min: 200, max: 600_000 }),
    connectionsMax: r.int('HTTP_CONNECTIONS_MAX', defaults.connectionsMax, { min: 1, max: 1_000_000 }),
  };
  if (limits.headersTimeoutMs <= limits.keepAliveTimeoutMs) {
    throw new ConfigError(
      `HTTP_HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs}) must be greater than HTTP_KEEP_ALIVE_TIMEOUT_MS (${limits.keepAliveTimeoutMs})`,
    );
  }
  if (limits.requestTimeoutMs < limits.headersTimeoutMs) {
    throw new ConfigError(
      `HTTP_REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs}) must be at least HTTP_HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs})`,
    );
  }
  return limits;
}

/**
 * An HTTP server with the limits applied. Node checks the header and request timers every
 * `connectionsCheckingInterval` (default 30 s, which would let a slow client live up to 30 s past its limit), so
 * the interval is a tenth of the headers timeout, at least 100 ms.
 */
export function createLimitedServer(limits: HttpServerLimits, listener: RequestListener): Server {
  const server = createServer(
    {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 10))),
    },
    listener,
  );
  server.maxConnections = limits.connectionsMax;
  return server;
}

export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Prometheus `/metrics` on its own port, never the public API port: the figures (request counts by outcome, queue
 * depths) help an attacker time a flood, and the scrape is not something a voter's request should reach. Only
 * `GET /metrics` and the `probes` given (a service without a public HTTP port answers its `/healthz` and `/readyz`
 * here); everything else is 404. Bounded like the public server (few connections: it serves scrapers).
 */
export async function startMetricsServer(opts: {
  registry: Registry;
  port: number;
  host: string;
  /** Extra `GET` paths answered with JSON: path -> [status, body]. */
  probes?: Record<string, () => readonly [status: number, body: unknown]>;
}): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createLimitedServer(
    { requestTimeoutMs: 10_000, headersTimeoutMs: 5_000, keepAliveTimeoutMs: 4_000, connectionsMax: 64 },
    (req, res) => {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      const probe = req.method === 'GET' && req.url !== undefined ? opts.probes?.[req.url] : undefined;
      if (probe !== undefined) {
        const [status, body] = probe();
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
        return;
      }
      if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('not found\n');
        return;
      }
      opts.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          res.end(body);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('metrics collection failed\n');
        },
      );
    },
  );
  const port = await listen(server, opts.port, opts.host);
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
