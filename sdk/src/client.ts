/**
 * The voter client: castVote, flushOutbox, getReceipt, subscribeResults. Only fetch, WebCrypto and setTimeout,
 * so it runs unchanged in browsers, React Native and Node.
 *
 * A vote's life: enter the outbox with a fresh Idempotency-Key (durably, before anything is sent) -> fetch (with
 * the voter's token: a challenge is bound to this voter and poll) and solve a proof-of-work challenge -> POST with
 * that key (and the app's attestation token, when it gives one) -> on a transient failure wait (Retry-After, or full-jitter
 * exponential back-off) and resend with the same key, within attemptsMax and retryBudgetMs -> leave the outbox only
 * on a final answer. Whatever is left is resent by flushOutbox(), after a restart too.
 */

import { defaultRetryPolicy, type RetryPolicy, retryDelayWithinBudgetMs, sleep } from './backoff.ts';
import { createDelivery, type VoteProgress } from './delivery.ts';
import { newIdempotencyKey, subjectOfToken } from './encoding.ts';
import { createApiRequest, getWithToken, receiptPath } from './http.ts';
import {
  createMemoryStorage,
  defaultOutboxLimits,
  type KeyValueStorage,
  Outbox,
  type OutboxEntry,
  type OutboxLimits,
} from './outbox.ts';
import { classifyReceiptAnswer, describeError, type ReceiptOutcome, type VoteOutcome } from './outcomes.ts';
import { type ChallengeSolver, createSliceSolver } from './pow.ts';
import { ResultsHub, type ResultsSubscription, type SubscribeResultsOptions, type TotalsUpdate } from './results.ts';

export interface VoterClientOptions {
  /** Base URL of the vote API, e.g. `https://vote.example.com` (paths `/v1/...` are appended). */
  apiUrl: string;
  /** MQTT over WebSockets URL for live totals, e.g. `wss://live.example.com/mqtt`. Needed by subscribeResults only. */
  mqttUrl?: string;
  /** The voter's current token (JWT). Called before every request, so a refreshed token is picked up. */
  getToken: () => string | Promise<string>;
  /** Durable storage for the outbox; default in-memory (votes do not survive a restart). Use asyncStorageAdapter(). */
  storage?: KeyValueStorage;
  /** Outbox storage key prefix; two clients with the same storage and namespace share one outbox. */
  storageNamespace?: string;
  /** Defaults to globalThis.fetch. */
  fetch?: typeof fetch;
  onProgress?: (progress: VoteProgress) => void;
  /** Default: createSliceSolver() (this thread, yielding every ~12 ms). Pass createWorkerSolver(...) to offload. */
  solver?: ChallengeSolver;
  retry?: Partial<RetryPolicy>;
  outbox?: Partial<OutboxLimits>;
  /** Per HTTP request; an answer slower than this counts as a network failure (and is retried with the same key). */
  requestTimeoutMs?: number;
  /** Fresh challenges solved for one vote when the server refuses a proof of work (expired, spent by a lost attempt). */
  rechallengesMax?: number;
  /**
   * The app's platform attestation token for this vote (Play Integrity integrity token, App Attest assertion), or
   * null when it has none. Called before each vote request; sent as `X-Votestream-Attestation` (at most
   * 8192 characters of base64/base64url/JWS) and recorded with the vote for checking later. A rejection or a
   * throw sends the vote without one.
   */
  getAttestation?: (request: { pollId: string; optionId: string }) => string | null | Promise<string | null>;
  /** Injected in tests. */
  random?: () => number;
  now?: () => number;
}

export interface CastVoteOptions {
  signal?: AbortSignal;
}

export interface FlushResult {
  pollId: string;
  optionId: string;
  outcome: VoteOutcome;
}

export interface VoterClient {
  castVote(pollId: string, optionId: string, options?: CastVoteOptions): Promise<VoteOutcome>;
  /** Resends every queued vote of the current voter; returns one result per vote it handled (expired ones too). */
  flushOutbox(options?: CastVoteOptions): Promise<FlushResult[]>;
  /** The votes still waiting for a final answer. */
  pendingVotes(): Promise<OutboxEntry[]>;
  getReceipt(pollId: string, options?: CastVoteOptions): Promise<ReceiptOutcome>;
  subscribeResults(
    pollId: string,
    onUpdate: (update: TotalsUpdate) => void,
    options?: SubscribeResultsOptions,
  ): Promise<ResultsSubscription>;
  /** Closes the MQTT connection; queued votes stay in storage. */
  close(): Promise<void>;
}

/** Default per-request timeout and rechallenge bound (VoterClientOptions.requestTimeoutMs, rechallengesMax). */
const requestTimeoutMsDefault = 10_000;
const rechallengesMaxDefault = 2;

export function createVoterClient(options: VoterClientOptions): VoterClient {
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const outbox = new Outbox(
    options.storage ?? createMemoryStorage(),
    options.storageNamespace ?? 'votestream',
    { ...defaultOutboxLimits, ...options.outbox },
    now,
  );
  const request = createApiRequest({
    apiUrl: options.apiUrl,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    requestTimeoutMs: options.requestTimeoutMs ?? requestTimeoutMsDefault,
  });
  const deliver = createDelivery({
    request,
    outbox,
    getToken: options.getToken,
    getAttestation: options.getAttestation,
    solver: options.solver ?? createSliceSolver(),
    onProgress: options.onProgress,
    policy,
    rechallengesMax: options.rechallengesMax ?? rechallengesMaxDefault,
    random,
    now,
  });
  /** One delivery per poll at a time in this client: a second castVote for the same poll joins the first. */
  const inFlight = new Map<string, { optionId: string; promise: Promise<VoteOutcome> }>();
  let hub: ResultsHub | null = null;

  function runExclusive(pollId: string, optionId: string, run: () => Promise<VoteOutcome>): Promise<VoteOutcome> {
    const running = inFlight.get(pollId);
    if (running) {
      if (running.optionId === optionId) return running.promise;
      return Promise.resolve({ kind: 'pending_vote_exists', pollId, pendingOptionId: running.optionId });
    }
    const promise = run().finally(() => {
      if (inFlight.get(pollId)?.promise === promise) inFlight.delete(pollId);
    });
    inFlight.set(pollId, { optionId, promise });
    return promise;
  }

  async function currentVoter(): Promise<string | null> {
    try {
      return subjectOfToken(await options.getToken());
    } catch {
      return null;
    }
  }

  return {
    castVote(pollId, optionId, castOptions = {}) {
      return runExclusive(pollId, optionId, async () => {
        const entry: OutboxEntry = {
          pollId,
          optionId,
          idempotencyKey: newIdempotencyKey(),
          createdAtMs: now(),
          voter: await currentVoter(),
          altcha: null,
          sent: false,
        };
        const added = await outbox.add(entry);
        if (added === 'full') {
          return {
            kind: 'outbox_full',
            pollId,
            entriesMax: options.outbox?.outboxEntriesMax ?? defaultOutboxLimits.outboxEntriesMax,
          };
        }
        if (!added.added) {
          // A vote for this poll survived from an earlier run: finish that one (same key) rather than start a second.
          if (added.existing.optionId !== optionId) {
            return { kind: 'pending_vote_exists', pollId, pendingOptionId: added.existing.optionId };
          }
          return deliver(added.existing, castOptions.signal);
        }
        return deliver(entry, castOptions.signal);
      });
    },

    async flushOutbox(flushOptions = {}) {
      const { entries, expired } = await outbox.list();
      const results: FlushResult[] = expired.map((e) => ({
        pollId: e.pollId,
        optionId: e.optionId,
        outcome: { kind: 'expired', pollId: e.pollId, optionId: e.optionId, idempotencyKey: e.idempotencyKey },
      }));
      const voter = await currentVoter();
      // One at a time: a flush after a long offline spell must not burst every queued vote at a recovering server.
      for (const e of entries) {
        if (e.voter !== null && voter !== null && e.voter !== voter) continue; // another voter's vote on this device
        const outcome = await runExclusive(e.pollId, e.optionId, async () => {
          const current = await outbox.get(e.pollId);
          if (current === null || current.idempotencyKey !== e.idempotencyKey) {
            return { kind: 'pending_vote_exists', pollId: e.pollId, pendingOptionId: current?.optionId ?? e.optionId };
          }
          return deliver(current, flushOptions.signal);
        });
        results.push({ pollId: e.pollId, optionId: e.optionId, outcome });
      }
      return results;
    },

    async pendingVotes() {
      return (await outbox.list()).entries;
    },

    async getReceipt(pollId, receiptOptions = {}) {
      const { signal } = receiptOptions;
      const startedAtMs = now();
      for (let attempt = 1; ; attempt++) {
        let outcome: ReceiptOutcome;
        let retryAfterMs: number | null = null;
        try {
          const answer = await getWithToken(request, await options.getToken(), receiptPath(pollId), signal);
          const queued = (await outbox.get(pollId)) !== null;
          const step = classifyReceiptAnswer(pollId, answer, queued, now());
          if (step.action === 'done') return step.outcome;
          outcome = step.outcome;
          retryAfterMs = step.retryAfterMs;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          outcome = { kind: 'network_error', pollId, detail: describeError(error), retryAfterMs: null };
        }
        const delayMs = retryDelayWithinBudgetMs(attempt, retryAfterMs, { startedAtMs, nowMs: now() }, policy, random);
        if (delayMs === null) return outcome;
        await sleep(delayMs, signal);
      }
    },

    async subscribeResults(pollId, onUpdate, subscribeOptions) {
      if (options.mqttUrl === undefined)
        throw new TypeError('createVoterClient: mqttUrl is required for subscribeResults');
      hub ??= new ResultsHub({ mqttUrl: options.mqttUrl, random });
      return hub.subscribe(pollId, onUpdate, subscribeOptions);
    },

    async close() {
      await hub?.shutdown();
      hub = null;
    },
  };
}
