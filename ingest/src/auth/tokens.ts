import { createHash, createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';

/** The verified identity behind a request. `voterId` is the token's `sub`. */
export interface Principal {
  voterId: string;
  tokenId: string | null;
  /** Epoch seconds after which this token is refused anyway (min of exp and iat + max token age): a revocation of its jti never needs to outlive it. */
  refusedAfterS: number;
  scopes: ReadonlySet<string>;
}

/** Why a token was refused (the problem's detail; never echoes the token). */
export interface TokenRefusal {
  refused: string;
}

export type TokenVerifier = (authorization: string | undefined) => Promise<Principal | TokenRefusal>;

/**
 * The characters a `sub` may use: what identity providers issue (Auth0 `google-oauth2|123`, Cognito UUIDs,
 * numeric ids, e-mail-like ids) and nothing that means something in the places `sub` travels raw: Kafka keys
 * (`<pollId>/<sub>`), Redis keys (`:`-separated, `{}` hash tags), CQL partition keys, logs (no newline, no
 * quotes, no spaces), JSON built by hand. A token whose `sub` has anything else is refused with 401.
 */
export const subPattern = /^[A-Za-z0-9._~@|+=:-]{1,128}$/;

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
 * algorithm confusion are refused by jose before any key is used), `iss`, `aud`, `exp`, `nbf`, `iat` required
 * and not older than `maxTokenAgeS` (jose's `maxTokenAge`: a stolen token ages out even if the identity provider
 * issued it with a far `exp`), and a `sub` of safe characters (`subPattern`). Resolves a refusal for any bad
 * token; the caller answers 401. Revocation (`jti`) is checked by the caller (auth/revocations.ts).
 */
export function createTokenVerifier(opts: {
  publicKeyPem: string | undefined;
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  clockToleranceS: number;
  maxTokenAgeS: number;
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
    maxTokenAge: opts.maxTokenAgeS,
    requiredClaims: ['exp', 'sub', 'iat'],
  };
  const refused = (why: string): TokenRefusal => ({ refused: why });
  return async (authorization) => {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return refused('bearer token required');
    const token = authorization.slice(7).trim();
    if (token.length === 0 || token.length > 4096) return refused('malformed token');
    let payload: JWTPayload;
    try {
      payload =
        typeof key === 'function'
          ? (await jwtVerify(token, key, verifyOptions)).payload
          : (await jwtVerify(token, key, verifyOptions)).payload;
    } catch (err) {
      // jose's messages name the failed check ("\"iat\" claim timestamp check failed (too far in the past)"),
      // never the token's content beyond claim names.
      return refused(err instanceof Error && 'code' in err ? err.message.slice(0, 200) : 'untrusted token');
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || !subPattern.test(sub)) {
      return refused('sub must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ @ | + = : -');
    }
    const scope = payload.scope;
    const scopes = new Set(typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '') : []);
    const refusedAfterS = Math.min(payload.exp as number, (payload.iat as number) + opts.maxTokenAgeS);
    const jti = payload.jti;
    return {
      voterId: sub,
      tokenId: typeof jti === 'string' && jti.length > 0 && jti.length <= 128 ? jti : null,
      refusedAfterS: refusedAfterS + opts.clockToleranceS,
      scopes,
    };
  };
}

/** Verified tokens remembered at once (`cachedTokenVerifier`); beyond it the oldest entry is dropped. ~150 B each. */
export const verifiedTokensMax = 50_000;
/**
 * How long a verification is reused at most, whatever the token's own lifetime: a key removed from the JWKS (or a
 * PEM key rotated by a restart) stops admitting tokens signed with it within this time. Revocation is checked on
 * every request anyway (auth/revocations.ts), cached or not.
 */
export const verifiedTokenReuseSMax = 300;

/**
 * Signature verification (Ed25519 or P-256 through WebCrypto) is the vote path's largest single cost, and a voter
 * presents the same token for the challenge and then for the vote (and for every resend and receipt read). This
 * remembers successful verifications, keyed by the SHA-256 of the whole `Authorization` value (a token is reused
 * only byte for byte: a forged token with a known `jti` has another hash), until the token would be refused for
 * its age or expiry (`refusedAfterS`) or `verifiedTokenReuseSMax` passed, whichever is first. Refusals are not
 * remembered. Bounded by `entriesMax`: when full, the oldest entry is dropped (insertion order).
 */
export function cachedTokenVerifier(
  verify: TokenVerifier,
  opts: { entriesMax: number; reuseSMax: number; nowMs: () => number },
): TokenVerifier {
  const verified = new Map<string, { principal: Principal; reuseUntilS: number }>();
  return async (authorization) => {
    if (authorization === undefined) return verify(authorization);
    const key = createHash('sha256').update(authorization).digest('base64');
    const nowS = opts.nowMs() / 1000;
    const hit = verified.get(key);
    if (hit !== undefined) {
      if (nowS < hit.reuseUntilS) return hit.principal;
      verified.delete(key);
    }
    const result = await verify(authorization);
    if ('refused' in result) return result;
    if (verified.size >= opts.entriesMax) {
      const oldest = verified.keys().next().value;
      if (oldest !== undefined) verified.delete(oldest);
    }
    verified.set(key, {
      principal: result,
      reuseUntilS: Math.min(result.refusedAfterS, Math.floor(nowS) + opts.reuseSMax),
    });
    return result;
  };
}
