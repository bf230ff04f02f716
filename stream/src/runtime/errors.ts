import { InvariantError } from '@votestream/runtime';

/**
 * How the runtime recovers from a task's error, decided by the error's type (Kafka Streams' TaskManager: task
 * migrated -> close and rejoin; anything the task can retry -> rebuild it; anything else -> the fatal handler):
 * - `rejoin`: another owner fenced this task's transactional id (it has the partition now): abort and close the
 *   task (`task closed`, why `fenced`); the group assignment decides whether it comes back (a later batch of the
 *   partition re-creates it, which fences the other owner in turn), the consumer rejoins at its next heartbeat.
 * - `retry`: the transaction failed for a reason that may pass (broker gone, coordinator loading, barrier or
 *   restore timeout): abort, close (why `failed`), rebuild the task from its changelog on the next batch.
 *   Both count towards taskFailuresMax consecutive failures of the task and wait the same back-off.
 * - `fatal`: an invariant is broken (a tally went backwards, a changelog record that cannot be read, an
 *   illegal task state transition): hand the error to the fatal handler injected by main.ts; never limp on.
 */
export type Recovery = 'rejoin' | 'retry' | 'fatal';

/** The task's producer was fenced: a newer owner initialised the same transactionalId. */
export class TaskFencedError extends Error {
  override readonly name = 'TaskFencedError';
}

/** A task method was called in a state that does not allow it (a bug in the runtime: fatal). */
export class IllegalTaskStateError extends InvariantError {}

/** A changelog record the codec cannot read: the store would restore wrong state (fatal). */
export class ChangelogCorruptError extends InvariantError {}

/** Too many consecutive failures of one task: the process gives up (fatal; the supervisor restarts it). */
export class TaskFailuresExhaustedError extends Error {
  override readonly name = 'TaskFailuresExhaustedError';
}

/** KafkaJS error types that mean "an owner with a newer epoch has this transactionalId". */
const fencedTypes = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

export function recoveryOf(err: unknown): Recovery {
  if (err instanceof InvariantError || err instanceof TaskFailuresExhaustedError) return 'fatal';
  if (err instanceof TaskFencedError) return 'rejoin';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && fencedTypes.has(type)) return 'rejoin';
    // KafkaJS wraps the broker's error in KafkaJSNumberOfRetriesExceeded (`cause`).
    e = (e as { cause?: unknown }).cause;
  }
  return 'retry';
}

/** What main.ts decides on a fatal error (log and exit: the supervisor restarts the process). */
export type FatalHandler = (err: unknown) => void;
