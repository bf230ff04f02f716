import type { ReadModels } from '@votestream/read-models';
import type { Logger } from '@votestream/runtime';
import type { VoteCast } from '@votestream/schemas';
import type { ChallengeIssuer } from './abuse/challenge.ts';
import type { ChallengePolicy } from './abuse/challenge-policy.ts';
import type { KeyedLimit, RateLimits } from './abuse/rate-limit.ts';
import type { TokenRevocations } from './auth/revocations.ts';
import type { TokenVerifier } from './auth/tokens.ts';
import type { IngestConfig } from './config.ts';
import type { ClientAddressResolver } from './http/client-address.ts';
import type { IngestMetrics } from './metrics.ts';
import type { PollAdmin } from './polls/admin.ts';
import type { PollCatalog } from './polls/catalog.ts';
import type { VoteGuards } from './votes/admission.ts';
import type { VoteBatcher } from './votes/batcher.ts';
import type { Resolver } from './votes/resolution.ts';

/**
 * Fault injection for tests only: no environment variable or config reaches it, `main.ts` never sets it
 * (ingest/test/fault-entry.ts does, and SIGKILLs the process at these points).
 */
export interface VoteFaults {
  /** After the vote was admitted in Redis, before it is handed to the producer. */
  afterAdmit?(vote: VoteCast): void;
  /** After Kafka acknowledged the vote, before the idempotent answer is stored and the 202 sent. */
  afterAck?(vote: VoteCast): void;
}

/** The settings the routes read (all validated by `loadIngestConfig`). */
export type RouteConfig = Pick<
  IngestConfig,
  | 'bodyLimitBytes'
  | 'challengePolicy'
  | 'jwtAdminScope'
  | 'jwtClockToleranceS'
  | 'jwtMaxTokenAgeS'
  | 'produceTimeoutMs'
  | 'voteProduceDeadlineMs'
  | 'voteCloseAckGraceMs'
>;

/**
 * What the routes work with: built from real clients by `startIngest` (service.ts), or from fakes of the
 * producer, the Redis-backed stores and the catalog by the unit tests (ingest/test/unit). Each part is typed by
 * what the routes call, so a fake implements only that.
 */
export interface IngestContext {
  config: RouteConfig;
  logger: Logger;
  metrics: IngestMetrics;
  /** Epoch ms: the vote's `receivedAt` and every poll-status and deadline decision of a request. */
  now: () => number;
  verifyToken: TokenVerifier;
  revocations: TokenRevocations;
  clientAddress: ClientAddressResolver;
  challenges: ChallengeIssuer;
  challengePolicy: ChallengePolicy;
  rateLimits: RateLimits;
  /** Poll creations per admin (`sub`): resolves the seconds to wait, 0 when allowed. */
  pollCreateLimit: KeyedLimit;
  guards: VoteGuards;
  catalog: Pick<PollCatalog, 'get'>;
  pollAdmin: Pick<PollAdmin, 'create' | 'close'>;
  batcher: Pick<VoteBatcher, 'submit'>;
  encodeVote: (v: VoteCast) => Buffer;
  readModels: Pick<ReadModels, 'getResults' | 'getReceipt'>;
  resolver: Resolver;
  /** produceAppendBoundMs of this process's Kafka settings (see config.ts). */
  produceAppendBoundMs: number;
  faults: VoteFaults | undefined;
  isReady: () => boolean;
}
