import type { Request } from 'express';

/** `User-Agent` kept as vote evidence, cut to this length. */
export const userAgentCharsMax = 256;
/** Other free-text headers kept (`X-Device-Id`), cut to this length. */
export const headerCharsMax = 128;
/** Characters of a client-supplied id echoed back in a problem's detail. */
export const echoedIdCharsMax = 64;

/** A single-valued, non-empty header cut to `max` characters, or null. */
export function boundedHeader(req: Request, name: string, max: number): string | null {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v.slice(0, max) : null;
}
