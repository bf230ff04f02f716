/**
 * The SDK's own invariant(): @votestream/runtime is a Node server library (pino, prom-client, kafkajs), so the
 * browser/React Native SDK cannot import it. Same contract: a broken invariant throws loudly, never limps on.
 */
export class SdkInvariantError extends Error {
  override readonly name = 'SdkInvariantError';
}

export function invariantSdk(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SdkInvariantError(message);
}
