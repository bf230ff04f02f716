import { createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';

/** The verified identity behind a request. `voterId` is the token's `sub`. */
export interface Principal {
  voterId: string;
  tokenId: string | null;
  scopes: ReadonlySet<string>;
}

export type TokenVerifier = (authorization: string | undefined) => Promise<Principal | null>;

/** Only asymmetric algorithms: ingest holds public keys, never a key that can mint tokens. */
const asymmetric = ['EdDSA', 'ES256'] as const;

function algorithmOfPublicKey(pem: string): 'EdDSA' | 'ES256' {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`JWT public key must be Ed25519 or P-256, got ${key.asymmetricKeyType}`);
}

/**
 * Verifies `Authorization: Bearer <jwt>`: signature (EdDSA or ES256 only, so `alg: none` and HS256
 * algorithm confusion are refused by jose before any key is used), `iss`, `aud`, `exp`, `nbf`, and a
 * non-empty `sub`. Resolves null for any bad token; the caller answers 401.
 */
export function createTokenVerifier(opts: {
  publicKeyPem: string | undefined;
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  clockToleranceS: number;
}): TokenVerifier {
  let key: JWTVerifyGetKey | ReturnType<typeof createPublicKey>;
  let algorithms: string[];
  if (opts.jwksUrl) {
    key = createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: 2000, cooldownDuration: 30_000 });
    algorithms = [...asymmetric];
  } else if (opts.publicKeyPem) {
    algorithms = [algorithmOfPublicKey(opts.publicKeyPem)];
    key = createPublicKey(opts.publicKeyPem);
  } else {
    throw new Error('a JWT public key or JWKS URL is required');
  }
  const verifyOptions = {
    issuer: opts.issuer,
    audience: opts.audience,
    algorithms,
    clockTolerance: opts.clockToleranceS,
    requiredClaims: ['exp', 'sub'],
  };
  return async (authorization) => {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return null;
    const token = authorization.slice(7).trim();
    if (token.length === 0 || token.length > 4096) return null;
    let payload: JWTPayload;
    try {
      payload =
        typeof key === 'function'
          ? (await jwtVerify(token, key, verifyOptions)).payload
          : (await jwtVerify(token, key, verifyOptions)).payload;
    } catch {
      return null;
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 128) return null;
    const scope = payload.scope;
    const scopes = new Set(typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '') : []);
    return { voterId: sub, tokenId: typeof payload.jti === 'string' ? payload.jti.slice(0, 128) : null, scopes };
  };
}
