/**
 * @votestream/sdk: the voter SDK for the votestream vote API (browsers, React Native, Node).
 * Only fetch, WebCrypto and setTimeout in the core; MQTT (for live totals) is loaded on first use.
 */

export { backoffDelayMs, defaultRetryPolicy, nextDelayMs, parseRetryAfterMs, type RetryPolicy } from './backoff.ts';
export {
  type CastVoteOptions,
  createVoterClient,
  type FlushResult,
  type VoterClient,
  type VoterClientOptions,
} from './client.ts';
export type { VoteProgress } from './delivery.ts';
export { newIdempotencyKey, subjectOfToken } from './encoding.ts';
export {
  asyncStorageAdapter,
  createMemoryStorage,
  defaultOutboxLimits,
  type KeyValueStorage,
  type OutboxEntry,
  type OutboxLimits,
  type StorageLike,
} from './outbox.ts';
export {
  type ReceiptOutcome,
  type ReceiptStatus,
  type RefusalKind,
  type TransientKind,
  type VoteErrorCode,
  type VoteOutcome,
  type VoteOutcomeKind,
  voteErrorCodes,
} from './outcomes.ts';
export {
  type AltchaChallenge,
  type AltchaChallengeParameters,
  type AltchaSolution,
  type ChallengeSolver,
  ChallengeUnsolvedError,
  createSliceSolver,
  createWorkerSolver,
  defaultSolverLimits,
  encodeAltchaPayload,
  type SolveProgress,
  type SolverLimits,
  solveAltcha,
  type UnsolvedReason,
  type WorkerLike,
} from './pow.ts';
export {
  type ResultsStatus,
  type ResultsSubscription,
  type SubscribeResultsOptions,
  type TotalsUpdate,
  totalsTopic,
} from './results.ts';
export { sdkClientHeader, sdkVersion } from './version.ts';
