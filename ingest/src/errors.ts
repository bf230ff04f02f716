import { type Logger, requestErrorCode } from '@votestream/runtime';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { type ProblemCode, ProblemError, sendProblem } from './http/problem.ts';

/** After every route: anything unmatched is 404 not_found. */
export const notFound: RequestHandler = (_req, _res, next) => next(new ProblemError('not_found', 'no such route'));

/**
 * The app's last middleware: every error becomes an RFC 9457 problem. A ProblemError carries its code; errors the
 * request's own bytes caused are 4xx; anything else is logged and answered 500 internal (no detail leaks).
 */
export function problemHandler(opts: { bodyLimitBytes: number; logger: Logger }): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (err instanceof ProblemError) {
      sendProblem(res, err.code, err.message, err.extensions, err.retryAfterS);
      return;
    }
    // Errors the request's own bytes caused before or while parsing it (bad percent-escapes in the path, a body
    // that does not decompress or parse, an unsupported encoding): 4xx problems, never 500.
    const requestError = requestErrorCode(err);
    if (requestError !== null) {
      const code: ProblemCode = requestError === 'body_too_large' ? 'invalid_body' : requestError;
      const detail =
        requestError === 'body_too_large'
          ? `body larger than ${opts.bodyLimitBytes} bytes`
          : requestError === 'invalid_path'
            ? 'the path is not valid percent-encoding'
            : requestError === 'unsupported_encoding'
              ? 'Content-Encoding gzip, deflate, br or identity and charset utf-8 only'
              : 'malformed or undecodable body';
      sendProblem(res, code, detail);
      return;
    }
    opts.logger.error({ err }, 'unhandled error');
    sendProblem(res, 'internal');
  };
}
