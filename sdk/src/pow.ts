/**
 * Proof of work: solving ALTCHA v2 challenges (the format altcha-lib 2.x creates and verifies) with WebCrypto only,
 * so the same code runs in browsers, React Native (with a WebCrypto polyfill exposing crypto.subtle) and Node.
 *
 * The v2 puzzle: find the smallest counter c such that deriveKey(salt, nonce || uint32be(c)) starts with keyPrefix.
 *   SHA-256/384/512:       k0 = salt || password; k(i+1) = digest(k(i)) repeated `cost` times; key = k.slice(0, keyLength)
 *   PBKDF2/SHA-256/384/512: key = PBKDF2(password, salt, iterations = cost, keyLength bytes)
 * A prefix of even length is compared as bytes, an odd one as lower-case hex (as altcha-lib does).
 * SCRYPT and ARGON2ID are not available in WebCrypto; such a challenge fails with `unsupported_algorithm`.
 *
 * The solver works in time slices: it derives keys until `sliceMs` has passed, reports progress, then yields to the
 * event loop with setTimeout(0) so the UI thread stays responsive; `createWorkerSolver` moves the same loop into a
 * Web Worker where the platform has one.
 */

export interface AltchaChallengeParameters {
  algorithm: string;
  nonce: string;
  salt: string;
  cost: number;
  keyLength: number;
  keyPrefix: string;
  keySignature?: string;
  memoryCost?: number;
  parallelism?: number;
  expiresAt?: number;
  data?: Record<string, string | number | boolean | null>;
}

/** What `GET /v1/challenge` returns (altcha-lib `createChallenge` output): parameters plus their HMAC signature. */
export interface AltchaChallenge {
  parameters: AltchaChallengeParameters;
  signature?: string;
}

export interface AltchaSolution {
  counter: number;
  /** Lower-case hex of the derived key. */
  derivedKey: string;
  /** Milliseconds spent solving. */
  time: number;
}

export interface SolveProgress {
  /** Keys derived so far. */
  attempts: number;
  elapsedMs: number;
}

export interface SolveOptions {
  signal?: AbortSignal;
  onProgress?: (progress: SolveProgress) => void;
}

/** Pluggable: the default solves on the calling thread in slices; `createWorkerSolver` offloads to a Worker. */
export interface ChallengeSolver {
  /** Resolves with the solution or rejects with ChallengeUnsolvedError (or the signal's reason when aborted). */
  solve(challenge: AltchaChallenge, options?: SolveOptions): Promise<AltchaSolution>;
}

export type UnsolvedReason = 'invalid_challenge' | 'unsupported_algorithm' | 'attempts_exhausted' | 'timeout';

export class ChallengeUnsolvedError extends Error {
  override readonly name = 'ChallengeUnsolvedError';
  constructor(
    readonly reason: UnsolvedReason,
    message: string,
  ) {
    super(message);
  }
}

export interface SolverLimits {
  /** Upper bound on keys derived for one challenge (uint32 counter space caps it at 2^32 anyway). */
  solveAttemptsMax: number;
  /** Upper bound on wall time for one challenge. */
  solveTimeMsMax: number;
  /** Work between two yields to the event loop (one frame is ~16 ms; less leaves room for rendering). */
  sliceMs: number;
  /** Keys derived concurrently inside a slice; WebCrypto digests are async, so a few in flight hide the hop cost. */
  parallelDerivations: number;
}

export const defaultSolverLimits: Readonly<SolverLimits> = Object.freeze({
  solveAttemptsMax: 50_000_000,
  solveTimeMsMax: 120_000,
  sliceMs: 12,
  parallelDerivations: 8,
});

const uint32Max = 0xffffffff;
const shaAlgorithms: Readonly<Record<string, string>> = {
  'SHA-256': 'SHA-256',
  'SHA-384': 'SHA-384',
  'SHA-512': 'SHA-512',
};
const pbkdf2Algorithms: Readonly<Record<string, string>> = {
  'PBKDF2/SHA-256': 'SHA-256',
  'PBKDF2/SHA-384': 'SHA-384',
  'PBKDF2/SHA-512': 'SHA-512',
};
/** Bounds on server-chosen parameters, so a broken or hostile challenge cannot make the phone hash for an hour per key. */
const costMax = 10_000_000;
const keyLengthMax = 64;

/** Checks the shape of a challenge received as JSON. Throws ChallengeUnsolvedError('invalid_challenge'). */
export function parseChallenge(body: unknown): AltchaChallenge {
  const o = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : null;
  const p =
    o && typeof o.parameters === 'object' && o.parameters !== null ? (o.parameters as Record<string, unknown>) : null;
  const bad = (what: string): never => {
    throw new ChallengeUnsolvedError('invalid_challenge', `challenge ${what}`);
  };
  if (!p) return bad('has no parameters');
  if (typeof p.algorithm !== 'string') bad('algorithm is not a string');
  if (typeof p.nonce !== 'string' || !isHex(p.nonce)) bad('nonce is not hex');
  if (typeof p.salt !== 'string' || !isHex(p.salt)) bad('salt is not hex');
  if (typeof p.cost !== 'number' || !Number.isInteger(p.cost) || p.cost < 1 || p.cost > costMax)
    bad('cost out of range');
  const keyLength = p.keyLength === undefined ? 32 : p.keyLength;
  if (typeof keyLength !== 'number' || !Number.isInteger(keyLength) || keyLength < 1 || keyLength > keyLengthMax)
    bad('keyLength out of range');
  if (typeof p.keyPrefix !== 'string' || p.keyPrefix === '' || !/^[0-9a-fA-F]+$/.test(p.keyPrefix))
    bad('keyPrefix is not hex');
  if ((p.keyPrefix as string).length > (keyLength as number) * 2) bad('keyPrefix is longer than the key');
  if (o?.signature !== undefined && typeof o.signature !== 'string') bad('signature is not a string');
  // Keep every parameter exactly as received: the server re-computes the HMAC over them.
  const challenge: AltchaChallenge = { parameters: p as unknown as AltchaChallengeParameters };
  if (typeof o?.signature === 'string') challenge.signature = o.signature;
  return challenge;
}

/** `Uint8Array<ArrayBuffer>`: WebCrypto takes BufferSource, which excludes views over a SharedArrayBuffer. */
type Bytes = Uint8Array<ArrayBuffer>;
type DeriveKey = (salt: Bytes, password: Bytes) => Promise<Bytes>;

function deriveKeyFor(parameters: AltchaChallengeParameters, subtle: SubtleCrypto): DeriveKey {
  const keyLength = parameters.keyLength ?? 32;
  const cost = Math.max(1, parameters.cost);
  const sha = shaAlgorithms[parameters.algorithm];
  if (sha !== undefined) {
    // Hot loop: one buffer per lane for salt || password, no async wrapper for the common cost = 1.
    return (salt, password) => {
      const data: Bytes = new Uint8Array(salt.length + password.length);
      data.set(salt, 0);
      data.set(password, salt.length);
      if (cost === 1) return subtle.digest(sha, data).then((d) => truncate(new Uint8Array(d), keyLength));
      return (async () => {
        let k: Bytes = data;
        for (let i = 0; i < cost; i++) k = new Uint8Array(await subtle.digest(sha, k));
        return truncate(k, keyLength);
      })();
    };
  }
  const pbkdf2Hash = pbkdf2Algorithms[parameters.algorithm];
  if (pbkdf2Hash !== undefined) {
    return async (salt, password) => {
      const key = await subtle.importKey('raw', password, { name: 'PBKDF2' }, false, ['deriveBits']);
      const bits = await subtle.deriveBits(
        { name: 'PBKDF2', salt, iterations: cost, hash: pbkdf2Hash },
        key,
        keyLength * 8,
      );
      return new Uint8Array(bits);
    };
  }
  throw new ChallengeUnsolvedError(
    'unsupported_algorithm',
    `algorithm ${parameters.algorithm} is not available through WebCrypto (supported: SHA-256/384/512, PBKDF2/SHA-256/384/512)`,
  );
}

/** The first keyLength bytes; no copy when the digest is exactly that long (SHA-256 with the default 32). */
function truncate(k: Bytes, keyLength: number): Bytes {
  return k.length <= keyLength ? k : k.slice(0, keyLength);
}

function prefixMatcher(keyPrefix: string): (key: Uint8Array) => boolean {
  const hex = keyPrefix.toLowerCase();
  if (hex.length % 2 === 0) {
    const bytes = hexToBytes(hex);
    return (key) => {
      for (let i = 0; i < bytes.length; i++) if (key[i] !== bytes[i]) return false;
      return true;
    };
  }
  // Odd length: all whole bytes, then the high nibble of the next one.
  const whole = hexToBytes(hex.slice(0, -1));
  const nibble = Number.parseInt(hex.slice(-1), 16);
  return (key) => {
    for (let i = 0; i < whole.length; i++) if (key[i] !== whole[i]) return false;
    const next = key[whole.length];
    return next !== undefined && next >> 4 === nibble;
  };
}

export interface SolveRangeOptions extends SolveOptions {
  limits?: Partial<SolverLimits>;
  /** First counter tried (a worker pool would partition the range); default 0. */
  counterStart?: number;
  /** Defaults to globalThis.crypto.subtle. */
  subtle?: SubtleCrypto;
  now?: () => number;
}

/**
 * The solve loop shared by the in-thread solver and the worker. Counters are tried in increasing order, so the
 * result is the same smallest counter altcha-lib's own solver finds.
 */
export async function solveAltcha(
  challenge: AltchaChallenge,
  options: SolveRangeOptions = {},
): Promise<AltchaSolution> {
  const limits = { ...defaultSolverLimits, ...options.limits };
  const now = options.now ?? (() => performance.now());
  const subtle = options.subtle ?? globalThis.crypto?.subtle;
  if (!subtle) throw new ChallengeUnsolvedError('unsupported_algorithm', 'WebCrypto (crypto.subtle) is not available');
  const p = parseChallenge(challenge).parameters;
  const derive = deriveKeyFor(p, subtle);
  const matches = prefixMatcher(p.keyPrefix);
  const salt = hexToBytes(p.salt);
  const nonce = hexToBytes(p.nonce);
  const parallel = Math.max(1, Math.floor(limits.parallelDerivations));
  // One password buffer per lane, reused across the whole solve: no allocation per attempt beyond WebCrypto's own.
  const passwords: Bytes[] = [];
  for (let i = 0; i < parallel; i++) {
    const buf = new Uint8Array(nonce.length + 4);
    buf.set(nonce, 0);
    passwords.push(buf);
  }
  const lanes: Promise<Bytes>[] = new Array(parallel);
  const start = now();
  let sliceStart = start;
  let counter = options.counterStart ?? 0;
  let attempts = 0;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (attempts >= limits.solveAttemptsMax || counter > uint32Max) {
      throw new ChallengeUnsolvedError('attempts_exhausted', `no solution within ${attempts} attempts`);
    }
    const n = Math.min(parallel, limits.solveAttemptsMax - attempts, uint32Max - counter + 1);
    for (let i = 0; i < n; i++) {
      const pw = passwords[i]!;
      writeUint32BE(pw, nonce.length, counter + i);
      lanes[i] = derive(salt, pw);
    }
    for (let i = 0; i < n; i++) {
      const key = await lanes[i]!;
      if (matches(key)) {
        return { counter: counter + i, derivedKey: bytesToHex(key), time: Math.round((now() - start) * 10) / 10 };
      }
    }
    counter += n;
    attempts += n;
    const t = now();
    if (t - sliceStart >= limits.sliceMs) {
      if (t - start > limits.solveTimeMsMax) {
        throw new ChallengeUnsolvedError('timeout', `no solution within ${limits.solveTimeMsMax} ms`);
      }
      options.onProgress?.({ attempts, elapsedMs: t - start });
      await yieldToEventLoop();
      sliceStart = now();
    }
  }
}

/** The default solver: in the calling thread, in time slices that yield to the event loop. */
export function createSliceSolver(limits: Partial<SolverLimits> = {}): ChallengeSolver {
  return {
    solve: (challenge, options = {}) => solveAltcha(challenge, { ...options, limits }),
  };
}

/**
 * The X-Altcha header value: base64 of the JSON payload `{ challenge, solution }`, which altcha-lib's
 * framework helpers parse with `JSON.parse(atob(value))`. The challenge is echoed exactly as received, with its
 * signature, because the server verifies statelessly.
 */
export function encodeAltchaPayload(challenge: AltchaChallenge, solution: AltchaSolution): string {
  const payload = {
    challenge:
      challenge.signature === undefined
        ? { parameters: challenge.parameters }
        : { parameters: challenge.parameters, signature: challenge.signature },
    solution: { counter: solution.counter, derivedKey: solution.derivedKey, time: solution.time },
  };
  return base64FromBytes(new TextEncoder().encode(JSON.stringify(payload)));
}

// ---- Worker offload -------------------------------------------------------------------------------------------

/** The part of a Web Worker (or a React Native worker library, or a Node worker_threads adapter) the SDK uses. */
export interface WorkerLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
  terminate(): void;
}

/** Messages of the worker protocol (see pow-worker.ts). */
export type PowWorkerRequest = { type: 'solve'; challenge: AltchaChallenge; limits: Partial<SolverLimits> };
export type PowWorkerReply =
  | { type: 'progress'; attempts: number; elapsedMs: number }
  | { type: 'solved'; solution: AltchaSolution }
  | { type: 'unsolved'; reason: UnsolvedReason; message: string };

/**
 * Offloads solving to a Worker running `pow-worker.ts`, one worker per challenge (created on demand, terminated
 * when done or aborted, so an abandoned solve never keeps burning the battery). In a browser bundle:
 *   createWorkerSolver(() => new Worker(new URL('@votestream/sdk/pow-worker', import.meta.url), { type: 'module' }))
 * When the factory throws (no Worker on this platform), it falls back to `fallback` (the in-thread slice solver).
 */
export function createWorkerSolver(
  createWorker: () => WorkerLike,
  options: { limits?: Partial<SolverLimits>; fallback?: ChallengeSolver } = {},
): ChallengeSolver {
  const limits = options.limits ?? {};
  const fallback = options.fallback ?? createSliceSolver(limits);
  return {
    solve(challenge, solveOptions = {}) {
      let worker: WorkerLike;
      try {
        worker = createWorker();
      } catch {
        return fallback.solve(challenge, solveOptions);
      }
      const { signal, onProgress } = solveOptions;
      return new Promise<AltchaSolution>((resolve, reject) => {
        let settled = false;
        const finish = (fn: () => void) => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener('abort', onAbort);
          worker.terminate();
          fn();
        };
        const onAbort = () => finish(() => reject(signal?.reason));
        if (signal?.aborted) {
          onAbort();
          return;
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        worker.addEventListener('message', (event) => {
          const reply = event.data as PowWorkerReply;
          if (reply.type === 'progress') onProgress?.({ attempts: reply.attempts, elapsedMs: reply.elapsedMs });
          else if (reply.type === 'solved') finish(() => resolve(reply.solution));
          else if (reply.type === 'unsolved')
            finish(() => reject(new ChallengeUnsolvedError(reply.reason, reply.message)));
        });
        worker.addEventListener('error', (event) => {
          const message = (event as { message?: unknown })?.message;
          finish(() =>
            reject(new ChallengeUnsolvedError('invalid_challenge', `worker failed: ${String(message ?? event)}`)),
          );
        });
        const request: PowWorkerRequest = { type: 'solve', challenge, limits };
        worker.postMessage(request);
      });
    },
  };
}

/** The body of the worker: answers one `solve` request per message. Exported so any worker host can install it. */
export function handlePowWorkerRequest(
  request: PowWorkerRequest,
  reply: (message: PowWorkerReply) => void,
): Promise<void> {
  return solveAltcha(request.challenge, {
    limits: request.limits,
    onProgress: (p) => reply({ type: 'progress', attempts: p.attempts, elapsedMs: p.elapsedMs }),
  }).then(
    (solution) => reply({ type: 'solved', solution }),
    (error: unknown) =>
      reply(
        error instanceof ChallengeUnsolvedError
          ? { type: 'unsolved', reason: error.reason, message: error.message }
          : { type: 'unsolved', reason: 'invalid_challenge', message: String(error) },
      ),
  );
}

// ---- bytes ----------------------------------------------------------------------------------------------------

function isHex(s: string): boolean {
  return s.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(s);
}

export function hexToBytes(hex: string): Bytes {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

const hexDigits = '0123456789abcdef';
export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    s += hexDigits[b >> 4]! + hexDigits[b & 15]!;
  }
  return s;
}

function writeUint32BE(buf: Uint8Array, offset: number, n: number): void {
  buf[offset] = (n >>> 24) & 0xff;
  buf[offset + 1] = (n >>> 16) & 0xff;
  buf[offset + 2] = (n >>> 8) & 0xff;
  buf[offset + 3] = n & 0xff;
}

const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** Standard base64 with padding; no btoa (missing on older React Native engines, and Latin-1 only). */
export function base64FromBytes(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += b64[n >> 18]! + b64[(n >> 12) & 63]! + b64[(n >> 6) & 63]! + b64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += `${b64[n >> 18]!}${b64[(n >> 12) & 63]!}==`;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += `${b64[n >> 18]!}${b64[(n >> 12) & 63]!}${b64[(n >> 6) & 63]!}=`;
  }
  return out;
}

/** setTimeout(0), not a microtask: only a macrotask lets the renderer and input handlers run. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
