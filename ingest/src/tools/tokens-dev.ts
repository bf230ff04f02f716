import { createPrivateKey, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';

/** Development and test tokens. Production tokens come from the identity provider, never from ingest. */
export async function mintToken(opts: {
  privateKeyPem: string;
  sub: string;
  admin?: boolean;
  ttlS?: number;
  issuer?: string;
  audience?: string;
  /** Override for tests: sign with another alg or omit claims. */
  notBeforeS?: number;
  expiresAtS?: number;
  /** `iat` (default now); null leaves it out. */
  issuedAtS?: number | null;
  /** `jti` (default a random UUID). */
  jti?: string;
}): Promise<string> {
  const key = createPrivateKey(opts.privateKeyPem);
  const alg = key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256';
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(opts.admin ? { scope: 'votestream:vote votestream:admin' } : { scope: 'votestream:vote' })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuer(opts.issuer ?? 'votestream-dev')
    .setAudience(opts.audience ?? 'votestream')
    .setJti(opts.jti ?? randomUUID())
    .setExpirationTime(opts.expiresAtS ?? now + (opts.ttlS ?? 3600));
  if (opts.issuedAtS !== null) jwt.setIssuedAt(opts.issuedAtS ?? now);
  if (opts.notBeforeS !== undefined) jwt.setNotBefore(opts.notBeforeS);
  return jwt.sign(key);
}
