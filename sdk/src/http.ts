/**
 * One HTTP exchange with the vote API: the SDK's client header, a per-request timeout (an answer slower than it is
 * a network failure, retried with the same key), the caller's abort signal, and the body parsed as JSON when it is.
 */
import type { HttpAnswer } from './outcomes.ts';
import { sdkClientHeader } from './version.ts';

export const jsonContentType = 'application/json';

export type ApiRequest = (
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal | undefined,
) => Promise<HttpAnswer>;

export function createApiRequest(opts: { apiUrl: string; fetch: typeof fetch; requestTimeoutMs: number }): ApiRequest {
  const apiUrl = opts.apiUrl.replace(/\/+$/, '');
  const { requestTimeoutMs } = opts;
  return async (method, path, headers, body, signal) => {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error(`no answer within ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    const onAbort = () => timeout.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await opts.fetch(`${apiUrl}${path}`, {
        method,
        headers: { ...headers, 'x-votestream-client': sdkClientHeader },
        body,
        signal: timeout.signal,
      });
      const text = await res.text();
      let parsed: unknown = null;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = null; // an HTML error page from a proxy: the status decides
        }
      }
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: parsed };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  };
}

/** `GET path` with the voter's bearer token. */
export function getWithToken(
  request: ApiRequest,
  token: string,
  path: string,
  signal: AbortSignal | undefined,
): Promise<HttpAnswer> {
  return request('GET', path, { authorization: `Bearer ${token}`, accept: jsonContentType }, undefined, signal);
}

/** The voter's own receipt in a poll. */
export function receiptPath(pollId: string): string {
  return `/v1/polls/${encodeURIComponent(pollId)}/votes/me`;
}
