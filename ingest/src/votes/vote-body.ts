import { idSyntax, isId } from '@votestream/schemas';

/**
 * The vote body `{ optionId, castAt? }`, checked by a hand-written validator: no schema interpretation
 * per request, no allocation beyond the result. Unknown fields and wrong types are refused.
 */
export interface VoteBody {
  optionId: string;
  /** Device clock, epoch ms; untrusted, kept for analysis. */
  castAt: number | null;
}

const idempotencyKeyPattern = /^[\x21-\x7e]{8,128}$/;

/** Returns the body or a reason it is invalid. */
export function parseVoteBody(body: unknown): VoteBody | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  let optionId: unknown;
  let castAt: unknown = null;
  for (const key in body) {
    if (key === 'optionId') optionId = (body as { optionId: unknown }).optionId;
    else if (key === 'castAt') castAt = (body as { castAt: unknown }).castAt;
    else return `unknown field ${key.slice(0, 64)}`;
  }
  if (typeof optionId !== 'string') return 'optionId must be a string';
  if (!isId(optionId)) return `optionId must match ${idSyntax}`;
  if (castAt !== null && (typeof castAt !== 'number' || !Number.isSafeInteger(castAt) || castAt < 0)) {
    return 'castAt must be epoch milliseconds (a non-negative integer) or null';
  }
  return { optionId, castAt };
}

export function isIdempotencyKey(value: unknown): value is string {
  return typeof value === 'string' && idempotencyKeyPattern.test(value);
}

export function isPollId(value: string): boolean {
  return isId(value);
}
