import type { RequestHandler } from 'express';

/** What body-parser's errors carry and `requestErrorCode` (libs/runtime) reads: a 4xx request error. */
function malformedBody(message: string): Error {
  return Object.assign(new SyntaxError(message), {
    status: 400,
    statusCode: 400,
    expose: true,
    type: 'entity.parse.failed',
  });
}

const leadingWhitespace = /^[ \t\n\r]*/;

/**
 * `express.json({ strict: true })` for the plain vote request, without body-parser's per-request work (parsing the
 * Content-Type, type-is, raw-body and its iconv decoder): a request with `Content-Type: application/json` (or
 * `application/json; charset=utf-8`), no Content-Encoding (or `identity`) and a Content-Length of at most
 * `limitBytes` is read and parsed here by body-parser's rules: UTF-8, a leading BOM dropped, an empty body is `{}`,
 * anything but an object or array (after whitespace) or bad JSON is a 400 `entity.parse.failed` error (the problem
 * handler's `invalid_body`). Every other request goes to `fallback` (the app's `express.json`), so the answers to
 * other types and charsets, compressed, chunked or oversized bodies are body-parser's own.
 */
export function plainJsonBody(limitBytes: number, fallback: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const h = req.headers;
    const type = h['content-type'];
    const length = h['content-length'];
    const encoding = h['content-encoding'];
    if (
      (type !== 'application/json' && type?.toLowerCase() !== 'application/json; charset=utf-8') ||
      length === undefined ||
      !(Number(length) <= limitBytes) ||
      (encoding !== undefined && encoding.toLowerCase() !== 'identity') ||
      req.readableEnded
    ) {
      fallback(req, res, next);
      return;
    }
    const chunks: Buffer[] = [];
    let settled = false;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
    };
    const settle = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      next(err);
    };
    const onError = () => settle(malformedBody('the request body could not be read'));
    const onEnd = () => {
      const raw = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      let text = raw.toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.length === 0) {
        req.body = {};
        settle(undefined);
        return;
      }
      const first = text[leadingWhitespace.exec(text)?.[0].length ?? 0];
      if (first !== '{' && first !== '[') {
        settle(malformedBody('the body must be a JSON object or array'));
        return;
      }
      try {
        req.body = JSON.parse(text);
      } catch {
        settle(malformedBody('the body is not valid JSON'));
        return;
      }
      settle(undefined);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  };
}
