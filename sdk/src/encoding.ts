/** Identifiers and token reading without dependencies (WebCrypto and TextDecoder only): browsers, React Native, Node. */

/** A random UUID v4: crypto.randomUUID where it exists (browsers in secure contexts, Node), else getRandomValues. */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The `sub` claim of a JWT, read WITHOUT verifying it: only to keep one voter's queued votes from being sent with
 * another voter's token on a shared device. The server verifies the token; nothing here trusts it.
 */
export function subjectOfToken(token: string): string | null {
  const part = token.split('.')[1];
  if (part === undefined) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = base64ToBytes(b64);
    const claims: unknown = JSON.parse(new TextDecoder().decode(bin));
    const sub = (claims as { sub?: unknown })?.sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

function base64ToBytes(b64: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const clean = b64.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (const ch of clean) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error('not base64');
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}
