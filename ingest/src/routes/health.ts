import type { Express } from 'express';
import type { IngestContext } from '../context.ts';
import { openApiDocument } from '../http/openapi.ts';

/** Liveness, readiness (catalog caught up, Kafka and Redis reachable, not stopping) and the OpenAPI document. */
export function registerHealthRoutes(app: Express, ctx: IngestContext): void {
  const spec = JSON.stringify(openApiDocument);
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = ctx.isReady();
    res.status(ready ? 200 : 503).json({ ready });
  });
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(spec);
  });
}
