/** Thrown when an invariant breaks. It is never caught to limp on: the process crashes and the supervisor restarts it. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

/** Thrown by `withTimeout` when the awaited event did not happen in time; the message names the event. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Resolves as `promise` does, or rejects with a TimeoutError naming `what` after `ms` milliseconds. For waits on
 * an event (a process exit, an MQTT message) that would otherwise hang until an outer limit with no clue.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
