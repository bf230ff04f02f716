import type { Request } from 'express';
import { ProblemError } from '../http/problem.ts';
import type { TokenRevocations } from './revocations.ts';
import type { Principal, TokenVerifier } from './tokens.ts';

/**
 * The request's bearer token, verified and not revoked, with `scope` when one is required:
 * 401 unauthenticated or 403 forbidden otherwise.
 */
export async function authenticate(
  auth: { verifyToken: TokenVerifier; revocations: TokenRevocations },
  req: Request,
  scope?: string,
): Promise<Principal> {
  const principal = await auth.verifyToken(req.headers.authorization);
  if ('refused' in principal) throw new ProblemError('unauthenticated', principal.refused);
  if (principal.tokenId !== null && (await auth.revocations.isRevoked(principal.tokenId))) {
    throw new ProblemError('unauthenticated', 'this token was revoked');
  }
  if (scope !== undefined && !principal.scopes.has(scope))
    throw new ProblemError('forbidden', `scope ${scope} required`);
  return principal;
}
