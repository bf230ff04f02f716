import express from 'express';
import type { IngestContext } from './context.ts';
import { notFound, problemHandler } from './errors.ts';
import { securityHeaders } from './http/hardening.ts';
import { plainJsonBody } from './http/json-body.ts';
import { registerChallengeRoutes } from './routes/challenge.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerPollRoutes } from './routes/polls.ts';
import { registerTokenRevocationRoutes } from './routes/token-revocations.ts';
import { registerVoteRoutes } from './routes/votes.ts';

/**
 * The Express app: settings, the security headers, the routes (the vote route first) and the problem+json error
 * handler. No I/O of its own: everything it talks to comes in `ctx` (service.ts builds it from real clients).
 */
export function createIngestApp(ctx: IngestContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Express's req.ip is not used: the client address comes from ctx.clientAddress (CLIENT_ADDRESS_SOURCE).
  app.set('trust proxy', false);
  app.use(securityHeaders);
  const json = express.json({ limit: ctx.config.bodyLimitBytes, strict: true, type: 'application/json' });

  // The vote route first: the router tries routes in order, and this is the one taking the load. Its plain JSON
  // bodies are read without body-parser's per-request work; any other body goes through `json` (http/json-body.ts).
  registerVoteRoutes(app, ctx, plainJsonBody(ctx.config.bodyLimitBytes, json));
  registerHealthRoutes(app, ctx);
  registerChallengeRoutes(app, ctx);
  registerTokenRevocationRoutes(app, ctx, json);
  registerPollRoutes(app, ctx, json);

  app.use(notFound);
  app.use(problemHandler({ bodyLimitBytes: ctx.config.bodyLimitBytes, logger: ctx.logger }));
  return app;
}
