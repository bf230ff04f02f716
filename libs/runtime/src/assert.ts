/** Thrown when an invariant breaks. It is never caught to limp on: the process crashes and the supervisor restarts it. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
