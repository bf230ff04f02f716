import type { Request } from 'express';
import { ProblemError } from '../http/problem.ts';
import type { TokenRevocations } from './revocations.ts';
import type { Principal, TokenVerifier } from './tokens.ts';

/**
 * The request's bearer token, verified and not revoked, with `scope` when one is required:
 * 401 unauthenticated or 403 forbidden otherwise. (The vote route runs the two halves itself, so that the
 * revocation read shares a Redis round trip with the rate limiters.)
 */
export async function authenticate(
  auth: { verifyToken: TokenVerifier; revocations: TokenRevocations },
  req: Request,
  scope?: string,
): Promise<Principal> {
  const principal = await verifiedPrincipal(auth, req);
  await notRevoked(auth, principal);
  if (scope !== undefined && !principal.scopes.has(scope))
    throw new ProblemError('forbidden', `scope ${scope} required`);
  return principal;
}

/** The request's bearer token verified (signature, claims; not yet the revocation list): 401 otherwise. */
export async function verifiedPrincipal(auth: { verifyToken: TokenVerifier }, req: Request): Promise<Principal> {
  const principal = await auth.verifyToken(req.headers.authorization);
  if ('refused' in principal) throw new ProblemError('unauthenticated', principal.refused);
  return principal;
}

/** Rejects with 401 if the token's jti is revoked (503 if the list cannot be read). */
export async function notRevoked(auth: { revocations: TokenRevocations }, principal: Principal): Promise<void> {
  if (principal.tokenId !== null && (await auth.revocations.isRevoked(principal.tokenId))) {
    throw new ProblemError('unauthenticated', 'this token was revoked');
  }
}
