import type { Express, RequestHandler } from 'express';
import { authenticate } from '../auth/authenticate.ts';
import type { IngestContext } from '../context.ts';
import { ProblemError } from '../http/problem.ts';

/** A `jti` as the verifier keeps it (auth/tokens.ts): longer ones are never checked, so never revoked. */
const jtiCharsMax = 128;
const jtiPattern = /^[\x21-\x7e]+$/;

/** `POST /v1/token-revocations` (admin scope). */
export function registerTokenRevocationRoutes(app: Express, ctx: IngestContext, json: RequestHandler): void {
  // Revokes a stolen token by its jti until it would age out anyway (JWT_MAX_TOKEN_AGE_S from now at most).
  app.post('/v1/token-revocations', json, async (req, res) => {
    await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const jti = (req.body as { jti?: unknown } | undefined)?.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > jtiCharsMax || !jtiPattern.test(jti)) {
      throw new ProblemError('invalid_body', `jti must be 1 to ${jtiCharsMax} printable ASCII characters`);
    }
    const nowS = Math.floor(ctx.now() / 1000);
    const revokedUntilS = nowS + ctx.config.jwtMaxTokenAgeS + ctx.config.jwtClockToleranceS;
    await ctx.revocations.revoke(jti, revokedUntilS, nowS);
    ctx.logger.warn({ jti }, 'token revoked');
    res.status(201).json({ jti, revokedUntil: new Date(revokedUntilS * 1000).toISOString() });
  });
}
