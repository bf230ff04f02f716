import { Worker } from 'node:worker_threads';
import { createChallenge, verifySolution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import test from 'ava';
import { ChallengeUnsolvedError, createWorkerSolver, type WorkerLike } from '../../src/pow.ts';

const secret = 'worker-test-secret';
const workers: Worker[] = [];

/** A WorkerLike over a Node worker thread running the SDK's worker entry (what `new Worker(url)` is in a browser). */
function nodeWorker(): WorkerLike {
  const w = new Worker(new URL('../helpers/node-pow-worker.mjs', import.meta.url));
  workers.push(w);
  return {
    postMessage: (m) => w.postMessage(m),
    addEventListener: (type: 'message' | 'error', listener: (event: { data: unknown } & unknown) => void) => {
      if (type === 'message') w.on('message', (data) => listener({ data }));
      else w.on('error', (err) => listener(err as unknown as { data: unknown }));
    },
    terminate: () => {
      void w.terminate();
    },
  } as WorkerLike;
}

test.after.always(async () => {
  await Promise.all(workers.map((w) => w.terminate()));
});

test('the worker solver solves off the calling thread, reports progress, and its solution verifies', async (t) => {
  const c = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 60_000,
    deriveKey,
    hmacSignatureSecret: secret,
    hmacKeySignatureSecret: 'k',
  });
  const progress: number[] = [];
  const solution = await createWorkerSolver(nodeWorker, { limits: { sliceMs: 5 } }).solve(c, {
    onProgress: (p) => progress.push(p.attempts),
  });
  t.is(solution.counter, 60_000);
  t.true(progress.length > 0);
  t.true(
    (
      await verifySolution({
        challenge: c,
        solution,
        deriveKey,
        hmacSignatureSecret: secret,
        hmacKeySignatureSecret: 'k',
      })
    ).verified,
  );
});

test('the worker reports an unsolvable challenge as ChallengeUnsolvedError', async (t) => {
  const c = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    keyPrefix: 'ffffffffff',
    deriveKey,
    hmacSignatureSecret: secret,
  });
  const e = await t.throwsAsync(createWorkerSolver(nodeWorker, { limits: { solveAttemptsMax: 100 } }).solve(c), {
    instanceOf: ChallengeUnsolvedError,
  });
  t.is(e?.reason, 'attempts_exhausted');
});

test('aborting terminates the worker and rejects with the reason', async (t) => {
  const c = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    keyPrefix: 'ffffffffff',
    deriveKey,
    hmacSignatureSecret: secret,
  });
  const controller = new AbortController();
  const solving = createWorkerSolver(nodeWorker).solve(c, { signal: controller.signal });
  setTimeout(() => controller.abort(new Error('screen closed')), 50);
  await t.throwsAsync(solving, { message: 'screen closed' });
});

test('without a Worker on the platform the solver falls back to the in-thread slice solver', async (t) => {
  const c = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 10,
    deriveKey,
    hmacSignatureSecret: secret,
    hmacKeySignatureSecret: 'k',
  });
  const solver = createWorkerSolver(() => {
    throw new ReferenceError('Worker is not defined');
  });
  t.is((await solver.solve(c)).counter, 10);
});
