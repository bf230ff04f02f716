import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { ReadModels } from '@votestream/read-models';
import type { Logger } from '@votestream/runtime';
import express from 'express';
import type { Registry } from 'prom-client';
import { livePage } from './live-page.ts';

const pollIdPattern = /^[a-z0-9-]{1,64}$/;

/** RFC 9457 problem details, with the same `type`/`code` scheme as the vote API. */
function sendProblem(res: express.Response, status: number, code: string, detail: string): void {
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: `https://votestream.dev/problems/${code}`, title: detail, status, code, detail }));
}
const mqttBrowserBundle = createRequire(import.meta.url).resolve('mqtt/dist/mqtt.min');

/**
 * HTTP: the live results page, health and metrics. Not a hot path. The results API is ingest's
 * (`GET /v1/polls/{pollId}/results`, one contract, problem+json errors), reading the same read models.
 */
export function createHttpServer(opts: {
  readModels: ReadModels;
  registry: Registry;
  mqttWsUrl: string;
  /** Base URL of the vote API the page reads the poll's labels from ('' = same origin, as behind the ALB). */
  apiUrl: string;
  logger: Logger;
  health: () => { ok: boolean; detail: Record<string, unknown> };
}) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/live/assets/mqtt.min.js', (_req, res) => {
    res.sendFile(mqttBrowserBundle, { maxAge: '1h' });
  });
  app.get('/live/:pollId', (req, res) => {
    const { pollId } = req.params;
    if (!pollIdPattern.test(pollId))
      return void sendProblem(res, 400, 'invalid_poll_id', 'poll ids are [a-z0-9-]{1,64}');
    res
      .type('html')
      .set('Cache-Control', 'no-store')
      .send(livePage({ pollId, mqttWsUrl: opts.mqttWsUrl, apiUrl: opts.apiUrl }));
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
  app.get('/metrics', async (_req, res) => {
    res.type(opts.registry.contentType).send(await opts.registry.metrics());
  });
  app.use((_req, res) => sendProblem(res, 404, 'not_found', 'no such resource'));
  return {
    listen(port: number): Promise<Server> {
      return new Promise((resolve, reject) => {
        const server = app.listen(port, '0.0.0.0', (err?: Error) => (err ? reject(err) : resolve(server)));
      });
    },
  };
}
