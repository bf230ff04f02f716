import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { ReadModels } from '@votestream/read-models';
import {
  answerClientErrors,
  createLimitedServer,
  type HttpServerLimits,
  type Logger,
  listen,
  requestErrorCode,
} from '@votestream/runtime';
import { idSyntax, isId } from '@votestream/schemas';
import express from 'express';
import { livePage } from './live-page.ts';

/** RFC 9457 problem details, with the same `type`/`code` scheme as the vote API. */
function sendProblem(res: express.Response, status: number, code: string, detail: string): void {
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: `https://votestream.dev/problems/${code}`, title: detail, status, code, detail }));
}
const mqttBrowserBundle = createRequire(import.meta.url).resolve('mqtt/dist/mqtt.min');

/** The origin a CSP `connect-src` needs for `url` ('' = the page's own origin, covered by 'self'). */
function originOf(url: string): string | null {
  if (url === '') return null;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}

/**
 * The live page's Content-Security-Policy: its one inline script and style run only with this response's nonce;
 * the MQTT bundle only from this origin (its timer Worker from blob:); fetches only to the vote API and the MQTT WebSocket; no plugins, no
 * forms, no <base>; framing only by `frameAncestors` (clickjacking over a TV graphics page).
 */
export function livePageCsp(nonce: string, opts: { apiUrl: string; mqttWsUrl: string; frameAncestors: string }) {
  const connect = ["'self'", originOf(opts.apiUrl), originOf(opts.mqttWsUrl)].filter((o) => o !== null);
  return [
    "default-src 'none'",
    `script-src 'self' 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    // mqtt.js runs its keep-alive timers in a Worker it creates from a blob: URL (so a background tab keeps them).
    'worker-src blob:',
    `connect-src ${connect.join(' ')}`,
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    `frame-ancestors ${opts.frameAncestors}`,
  ].join('; ');
}

/**
 * HTTP: the live results page and health (metrics are on their own port, runtime's startMetricsServer). Not a hot
 * path. Every response says nosniff. The results API is ingest's
 * (`GET /v1/polls/{pollId}/results`, one contract, problem+json errors), reading the same read models.
 */
export function createHttpServer(opts: {
  readModels: ReadModels;
  mqttWsUrl: string;
  /** Base URL of the vote API the page reads the poll's labels from ('' = same origin, as behind the ALB). */
  apiUrl: string;
  /** CSP frame-ancestors of the live page (LIVE_FRAME_ANCESTORS). */
  frameAncestors: string;
  limits: HttpServerLimits;
  logger: Logger;
  health: () => { ok: boolean; detail: Record<string, unknown> };
}) {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.get('/live/assets/mqtt.min.js', (_req, res) => {
    res.sendFile(mqttBrowserBundle, { maxAge: '1h' });
  });
  app.get('/live/:pollId', (req, res) => {
    const { pollId } = req.params;
    if (!isId(pollId)) return void sendProblem(res, 400, 'invalid_poll_id', `poll ids are ${idSyntax}`);
    // A fresh nonce per response (128 bits): a script injected into the page cannot guess it.
    const nonce = randomBytes(16).toString('base64');
    res
      .type('html')
      .set('Cache-Control', 'no-store')
      .set('Content-Security-Policy', livePageCsp(nonce, opts))
      .send(livePage({ pollId, mqttWsUrl: opts.mqttWsUrl, apiUrl: opts.apiUrl, nonce }));
  });
  // Readiness (Kubernetes /readyz; /health kept): its consumers and its MQTT connection are up.
  app.get(['/health', '/readyz'], (_req, res) => {
    const h = opts.health();
    res.status(h.ok ? 200 : 503).json(h);
  });
  // Liveness: the process answers; never depends on Kafka, Redis, CQL or MQTT.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'alive' });
  });
  app.use((_req, res) => sendProblem(res, 404, 'not_found', 'no such resource'));
  // A path that is not valid percent-encoding (`/live/%ff`) fails in the router: a client error, never a 500.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const code = requestErrorCode(err);
    if (code === 'invalid_path') return void sendProblem(res, 400, code, 'the path is not valid percent-encoding');
    if (code !== null) return void sendProblem(res, 400, 'bad_request', 'the request is not valid');
    opts.logger.error({ err }, 'unhandled error');
    sendProblem(res, 500, 'internal', 'internal error');
  });
  return {
    /**
     * Listens with the header/request timeouts and connection cap (HTTP_* env): a slow client is cut; what Node's
     * parser refuses is answered as problem+json.
     */
    async listen(port: number): Promise<{ server: Server; port: number }> {
      const server = createLimitedServer(opts.limits, app);
      answerClientErrors(server);
      return { server, port: await listen(server, port, '0.0.0.0') };
    },
  };
}
