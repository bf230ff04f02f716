import { type ClientErrorCode, clientErrorProblems } from '@votestream/runtime';
import type { Response } from 'express';

/** Every error code of the v1 API. Stable: clients switch on `code`, never on `title` or `detail`. */
export type ProblemCode =
  | 'invalid_body'
  | 'unknown_option'
  | 'unauthenticated'
  | 'forbidden'
  | 'challenge_required'
  | 'challenge_failed'
  | 'poll_not_found'
  | 'no_vote'
  | 'not_found'
  | 'poll_exists'
  | 'poll_limit_reached'
  | 'revocation_list_full'
  | 'already_voted'
  | 'poll_not_open'
  | 'poll_closed'
  | 'idempotency_key_reused'
  | 'rate_limited'
  | 'unavailable'
  | 'internal'
  | 'invalid_path'
  | 'unsupported_encoding'
  | ClientErrorCode;

const titles: Record<ProblemCode, readonly [status: number, title: string]> = {
  invalid_body: [400, 'The request is not valid'],
  unknown_option: [400, 'The option is not part of this poll'],
  unauthenticated: [401, 'A valid bearer token is required'],
  forbidden: [403, 'The token lacks the required scope'],
  challenge_required: [403, 'A solved proof-of-work challenge is required'],
  challenge_failed: [403, 'The proof-of-work solution is invalid, expired or already used'],
  poll_not_found: [404, 'No such poll'],
  no_vote: [404, 'No vote by this voter in this poll'],
  not_found: [404, 'No such resource'],
  poll_exists: [409, 'A poll with this id already exists'],
  poll_limit_reached: [409, 'The poll catalog is full'],
  revocation_list_full: [409, 'The token revocation list is full'],
  already_voted: [409, 'This voter already voted in this poll'],
  poll_not_open: [409, 'The poll is not open yet'],
  poll_closed: [409, 'The poll is closed'],
  idempotency_key_reused: [422, 'The Idempotency-Key was used with a different request'],
  rate_limited: [429, 'Too many requests'],
  unavailable: [503, 'The service cannot take this request right now'],
  internal: [500, 'Internal error'],
  invalid_path: [400, 'The request path is not valid'],
  unsupported_encoding: [415, 'The body encoding or charset is not supported'],
  // Answered by the server's clientError handler (libs/runtime http.ts) before Express sees the request.
  ...clientErrorProblems,
};

/** Every code of the table, for tests and generated documentation. */
export const problemCodes = Object.keys(titles) as ProblemCode[];

export function problemStatus(code: ProblemCode): number {
  return titles[code][0];
}

/** An RFC 9457 problem document. Extra members (voteId, retryAfterS) are allowed by the RFC. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail?: string;
  [extension: string]: unknown;
}

export function problem(code: ProblemCode, detail?: string, extensions?: Record<string, unknown>): Problem {
  const [status, title] = titles[code];
  return {
    type: `https://votestream.dev/problems/${code}`,
    title,
    status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...extensions,
  };
}

export function sendProblem(
  res: Response,
  code: ProblemCode,
  detail?: string,
  extensions?: Record<string, unknown>,
  retryAfterS?: number,
): void {
  const body = problem(code, detail, extensions);
  if (retryAfterS !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(retryAfterS))));
  res.status(body.status).type('application/problem+json').send(JSON.stringify(body));
}

/** Thrown inside handlers; the error middleware turns it into a problem response. */
export class ProblemError extends Error {
  constructor(
    readonly code: ProblemCode,
    detail?: string,
    readonly extensions?: Record<string, unknown>,
    readonly retryAfterS?: number,
  ) {
    super(detail ?? code);
  }
}
