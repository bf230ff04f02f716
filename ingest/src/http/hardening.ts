import type { NextFunction, Request, Response } from 'express';
import { ProblemError } from './problem.ts';

/**
 * Headers on every ingest response. The API answers JSON only: `nosniff` stops a browser from reading a JSON or
 * problem body as script or HTML, and `frame-ancestors 'none'` / `default-src 'none'` make any body rendered as a
 * document inert.
 */
export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
  next();
}

/**
 * `X-Votestream-Attestation`: the app's attestation token (Play Integrity integrity token, App Attest assertion),
 * passed through into the vote record's `evidence.attestation` for checking later (not verified on the vote path).
 * Bounded: a real token is a few kilobytes of base64/base64url/JWS; anything longer or with other characters is
 * 400 invalid_body (cut, it would be useless as evidence).
 */
export const attestationCharsMax = 8192;
const attestationPattern = /^[A-Za-z0-9+/=_.-]+$/;

export function attestationOf(req: Request): string | null {
  const v = req.headers['x-votestream-attestation'];
  if (v === undefined || v === '') return null;
  if (typeof v !== 'string' || v.length > attestationCharsMax || !attestationPattern.test(v)) {
    throw new ProblemError(
      'invalid_body',
      `X-Votestream-Attestation must be at most ${attestationCharsMax} characters of base64, base64url or JWS`,
    );
  }
  return v;
}
