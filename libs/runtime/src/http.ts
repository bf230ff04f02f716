import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Problems for requests Node's HTTP parser refuses before any route sees them (the server's `clientError`):
 * headers over the size limit, NUL or other bytes not allowed in a header, malformed framing, a request that
 * took too long to arrive. Both HTTP services answer them as RFC 9457 problem+json with these codes.
 */
export const clientErrorProblems = {
  bad_request: [400, 'The request is not valid HTTP'],
  request_timeout: [408, 'The request took too long to arrive'],
  headers_too_large: [431, 'The request headers are too large'],
} as const satisfies Record<string, readonly [number, string]>;
export type ClientErrorCode = keyof typeof clientErrorProblems;

/** The problem code for a `clientError` (Node's `HPE_*` parser codes, `ERR_HTTP_REQUEST_TIMEOUT`). */
export function clientErrorCode(code: string | undefined): ClientErrorCode {
  if (code === 'HPE_HEADER_OVERFLOW') return 'headers_too_large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_REQUEST_HEADERS_TIMEOUT') return 'request_timeout';
  return 'bad_request';
}

/**
 * Replaces Node's bare `400 Bad Request` / `431` (no body) with a problem+json answer, then closes the
 * connection (the parser's state is lost, nothing more can be read from it).
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A reset connection, or one whose response already started (the error came in the body after the handler
    // answered), cannot take another answer: as Node's default, destroy it.
    const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent === true) {
      socket.destroy();
      return;
    }
    const code = clientErrorCode(err.code);
    const [status, title] = clientErrorProblems[code];
    const body = JSON.stringify({ type: `https://votestream.dev/problems/${code}`, title, status, code });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

/**
 * The problem for an error a request's own bytes caused in Express or body-parser (http-errors with a 4xx
 * `status`): a path parameter that is not valid percent-encoding (the router's decodeURIComponent), a
 * Content-Encoding or charset that is not supported, a body that does not decompress or parse. Null for
 * everything else (a server fault: 500).
 */
export function requestErrorCode(
  err: unknown,
): 'invalid_path' | 'unsupported_encoding' | 'body_too_large' | 'invalid_body' | null {
  if (typeof err !== 'object' || err === null) return null;
  const e = err as { status?: unknown; statusCode?: unknown; type?: unknown; message?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 0;
  if (status < 400 || status > 499) return null;
  if (err instanceof URIError || (typeof e.message === 'string' && e.message.startsWith('Failed to decode param'))) {
    return 'invalid_path';
  }
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return 'unsupported_encoding';
  if (e.type === 'entity.too.large') return 'body_too_large';
  return 'invalid_body';
}
