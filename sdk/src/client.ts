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

import { defaultRetryPolicy, nextDelayMs, type RetryPolicy, sleep } from './backoff.ts';
import {
  createMemoryStorage,
  defaultOutboxLimits,
  type KeyValueStorage,
  Outbox,
  type OutboxEntry,
  type OutboxLimits,
} from './outbox.ts';
import {
  classifyReceiptAnswer,
  classifyVoteAnswer,
  describeError,
  type HttpAnswer,
  networkFailureStep,
  type ReceiptOutcome,
  type VoteOutcome,
  type VoteRequestContext,
  type VoteStep,
} from './outcomes.ts';
import {
  type ChallengeSolver,
  ChallengeUnsolvedError,
  createSliceSolver,
  encodeAltchaPayload,
  parseChallenge,
  type SolveProgress,
} from './pow.ts';
import { ResultsHub, type ResultsSubscription, type SubscribeResultsOptions, type TotalsUpdate } from './results.ts';
import { sdkClientHeader } from './version.ts';

export type VoteProgress =
  | { phase: 'challenge'; pollId: string }
  | ({ phase: 'solving'; pollId: string } & SolveProgress)
  | { phase: 'sending'; pollId: string; attempt: number }
  | { phase: 'waiting'; pollId: string; attempt: number; delayMs: number; reason: string };

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

const jsonContentType = 'application/json';

export function createVoterClient(options: VoterClientOptions): VoterClient {
  const apiUrl = options.apiUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const solver = options.solver ?? createSliceSolver();
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const rechallengesMax = options.rechallengesMax ?? 2;
  const outbox = new Outbox(
    options.storage ?? createMemoryStorage(),
    options.storageNamespace ?? 'votestream',
    { ...defaultOutboxLimits, ...options.outbox },
    now,
  );
  /** One delivery per poll at a time in this client: a second castVote for the same poll joins the first. */
  const inFlight = new Map<string, { optionId: string; promise: Promise<VoteOutcome> }>();
  let hub: ResultsHub | null = null;

  async function request(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<HttpAnswer> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error(`no answer within ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    const onAbort = () => timeout.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await doFetch(`${apiUrl}${path}`, {
        method,
        headers: { ...headers, 'x-votestream-client': sdkClientHeader },
        body,
        signal: timeout.signal,
      });
      const text = await res.text();
      let parsed: unknown = null;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = null; // an HTML error page from a proxy: the status decides
        }
      }
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: parsed };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async function attestationFor(pollId: string, optionId: string): Promise<string | null> {
    if (options.getAttestation === undefined) return null;
    try {
      const a = await options.getAttestation({ pollId, optionId });
      return typeof a === 'string' && a !== '' ? a : null;
    } catch {
      return null; // the platform's attestation service is down: vote without (the server records none)
    }
  }

  /** Fetches and solves a challenge; returns the X-Altcha value, or the step to take when that failed. */
  async function solveFresh(ctx: VoteRequestContext, signal: AbortSignal | undefined): Promise<string | VoteStep> {
    options.onProgress?.({ phase: 'challenge', pollId: ctx.pollId });
    let answer: HttpAnswer;
    try {
      const token = await options.getToken();
      answer = await request(
        'GET',
        `/v1/challenge?pollId=${encodeURIComponent(ctx.pollId)}`,
        { authorization: `Bearer ${token}`, accept: jsonContentType },
        undefined,
        signal,
      );
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      return networkFailureStep(ctx, error);
    }
    if (answer.status !== 200) {
      const step = classifyVoteAnswer(ctx, answer, now());
      // The challenge endpoint answers for the vote in three cases: a transient failure (retry), a token it refused
      // (kept until sign-in), a poll that does not exist (final). Anything else is not a verdict on the vote: keep it.
      if (
        step.action === 'retry' ||
        step.outcome.kind === 'unauthenticated' ||
        step.outcome.kind === 'poll_not_found'
      ) {
        return step;
      }
      return { action: 'keep', outcome: unexpectedChallengeAnswer(ctx, answer) };
    }
    try {
      const challenge = parseChallenge(answer.body);
      const solution = await solver.solve(challenge, {
        signal,
        onProgress: (p) => options.onProgress?.({ phase: 'solving', pollId: ctx.pollId, ...p }),
      });
      return encodeAltchaPayload(challenge, solution);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const detail =
        error instanceof ChallengeUnsolvedError ? `${error.reason}: ${error.message}` : describeError(error);
      return { action: 'keep', outcome: { kind: 'challenge_unsolved', pollId: ctx.pollId, detail, queued: true } };
    }
  }

  /** The retry loop for one outbox entry. Never throws for HTTP or network trouble; only for an abort. */
  async function deliver(initial: OutboxEntry, signal: AbortSignal | undefined): Promise<VoteOutcome> {
    let entry = initial;
    const startedAt = now();
    let attempt = 0;
    let rechallenges = 0;
    const path = `/v1/polls/${encodeURIComponent(entry.pollId)}/votes`;
    const body = JSON.stringify({ optionId: entry.optionId });
    for (;;) {
      const ctx: VoteRequestContext = {
        pollId: entry.pollId,
        optionId: entry.optionId,
        idempotencyKey: entry.idempotencyKey,
        resent: entry.sent,
      };
      let step: VoteStep;
      if (entry.altcha === null) {
        const solved = await solveFresh(ctx, signal);
        if (typeof solved === 'string') {
          entry = { ...entry, altcha: solved };
          await outbox.update(entry);
          continue;
        }
        step = solved;
      } else {
        const altcha = entry.altcha;
        attempt++;
        options.onProgress?.({ phase: 'sending', pollId: entry.pollId, attempt });
        if (!entry.sent) {
          // Recorded before sending: from now on a resend may meet the server's memory of this key.
          entry = { ...entry, sent: true };
          await outbox.update(entry);
        }
        try {
          const token = await options.getToken();
          const attestation = await attestationFor(entry.pollId, entry.optionId);
          const answer = await request(
            'POST',
            path,
            {
              authorization: `Bearer ${token}`,
              'content-type': jsonContentType,
              accept: jsonContentType,
              'idempotency-key': entry.idempotencyKey,
              'x-altcha': altcha,
              ...(attestation === null ? {} : { 'x-votestream-attestation': attestation }),
            },
            body,
            signal,
          );
          step = classifyVoteAnswer(ctx, answer, now());
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          step = networkFailureStep(ctx, error);
        }
      }
      switch (step.action) {
        case 'done': {
          const outcome = entry.sent ? await confirmLostAnswer(entry, step.outcome, signal) : step.outcome;
          await outbox.remove(entry.pollId, entry.idempotencyKey);
          return outcome;
        }
        case 'keep':
          return step.outcome;
        case 'rechallenge':
          if (rechallenges >= rechallengesMax) {
            await outbox.remove(entry.pollId, entry.idempotencyKey);
            return step.outcome;
          }
          rechallenges++;
          entry = { ...entry, altcha: null };
          await outbox.update(entry);
          continue;
        case 'retry': {
          if (attempt >= policy.attemptsMax) return step.outcome;
          const delayMs = nextDelayMs(attempt - 1, step.retryAfterMs, policy, random);
          if (now() + delayMs - startedAt > policy.retryBudgetMs) return step.outcome;
          options.onProgress?.({ phase: 'waiting', pollId: entry.pollId, attempt, delayMs, reason: step.outcome.kind });
          await sleep(delayMs, signal);
          continue;
        }
      }
    }
  }

  /**
   * A resend refused with poll_closed or already_voted may be the echo of our own earlier attempt whose 202 was lost.
   * One receipt read settles it: COUNTED with this option means that attempt went through. PENDING is not proof (a
   * guard can outlive an ingest crash between admission and the Kafka acknowledgement), so it keeps the refusal.
   */
  async function confirmLostAnswer(
    entry: OutboxEntry,
    outcome: VoteOutcome,
    signal: AbortSignal | undefined,
  ): Promise<VoteOutcome> {
    if (outcome.kind !== 'poll_closed' && outcome.kind !== 'already_voted') return outcome;
    try {
      const token = await options.getToken();
      const path = `/v1/polls/${encodeURIComponent(entry.pollId)}/votes/me`;
      const answer = await request(
        'GET',
        path,
        { authorization: `Bearer ${token}`, accept: jsonContentType },
        undefined,
        signal,
      );
      const step = classifyReceiptAnswer(entry.pollId, answer, true, now());
      const r = step.outcome;
      if (r.kind === 'receipt' && r.status === 'counted' && r.optionId === entry.optionId) {
        return {
          kind: 'accepted',
          pollId: entry.pollId,
          optionId: entry.optionId,
          voteId: r.voteId,
          idempotencyKey: entry.idempotencyKey,
          replayed: true,
          confirmedBy: 'receipt',
        };
      }
    } catch {
      if (signal?.aborted) throw signal.reason;
      // The receipt could not be read: the refusal stands; nothing is claimed that was not seen.
    }
    return outcome;
  }

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
      const startedAt = now();
      const path = `/v1/polls/${encodeURIComponent(pollId)}/votes/me`;
      for (let attempt = 1; ; attempt++) {
        let outcome: ReceiptOutcome;
        let retryAfterMs: number | null = null;
        try {
          const token = await options.getToken();
          const answer = await request(
            'GET',
            path,
            { authorization: `Bearer ${token}`, accept: jsonContentType },
            undefined,
            signal,
          );
          const queued = (await outbox.get(pollId)) !== null;
          const step = classifyReceiptAnswer(pollId, answer, queued, now());
          if (step.action === 'done') return step.outcome;
          outcome = step.outcome;
          retryAfterMs = step.retryAfterMs;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          outcome = { kind: 'network_error', pollId, detail: describeError(error), retryAfterMs: null };
        }
        if (attempt >= policy.attemptsMax) return outcome;
        const delayMs = nextDelayMs(attempt - 1, retryAfterMs, policy, random);
        if (now() + delayMs - startedAt > policy.retryBudgetMs) return outcome;
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

function unexpectedChallengeAnswer(ctx: VoteRequestContext, answer: HttpAnswer): VoteOutcome {
  const body = answer.body as { code?: unknown; detail?: unknown } | null;
  return {
    kind: 'unexpected_response',
    pollId: ctx.pollId,
    status: answer.status,
    code: typeof body?.code === 'string' ? body.code : null,
    detail: `GET /v1/challenge: ${typeof body?.detail === 'string' ? body.detail : `HTTP ${answer.status}`}`,
    queued: true,
  };
}

/** A random UUID v4: crypto.randomUUID where it exists (browsers in secure contexts, Node), else getRandomValues. */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The `sub` claim of a JWT, read WITHOUT verifying it: only to keep one voter's queued votes from being sent with
 * another voter's token on a shared device. The server verifies the token; nothing here trusts it.
 */
export function subjectOfToken(token: string): string | null {
  const part = token.split('.')[1];
  if (part === undefined) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = base64ToBytes(b64);
    const claims: unknown = JSON.parse(new TextDecoder().decode(bin));
    const sub = (claims as { sub?: unknown })?.sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

function base64ToBytes(b64: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const clean = b64.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (const ch of clean) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error('not base64');
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}
