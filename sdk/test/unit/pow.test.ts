import { createChallenge, solveChallenge, verifySolution } from 'altcha-lib';
import { deriveKey as pbkdf2DeriveKey } from 'altcha-lib/algorithms/pbkdf2';
import { deriveKey as shaDeriveKey } from 'altcha-lib/algorithms/sha';
import test from 'ava';
import {
  base64FromBytes,
  ChallengeUnsolvedError,
  createSliceSolver,
  encodeAltchaPayload,
  parseChallenge,
  solveAltcha,
} from '../../src/pow.ts';

const secret = 'test-hmac-secret';

async function challenge(algorithm: string, cost: number, keyPrefix: string) {
  const deriveKey = algorithm.startsWith('PBKDF2') ? pbkdf2DeriveKey : shaDeriveKey;
  return createChallenge({
    algorithm,
    cost,
    keyPrefix,
    deriveKey,
    hmacSignatureSecret: secret,
    expiresAt: Math.floor(Date.now() / 1000) + 600,
  });
}

for (const [algorithm, cost, prefix] of [
  ['SHA-256', 1, '00'],
  ['SHA-256', 3, '0a'],
  ['SHA-512', 1, '0'],
  ['SHA-384', 2, 'ab'],
  ['PBKDF2/SHA-256', 10, '0f'],
] as const) {
  test(`a ${algorithm} (cost ${cost}, prefix ${prefix}) solution passes altcha-lib's own verifySolution`, async (t) => {
    const c = await challenge(algorithm, cost, prefix);
    const solution = await solveAltcha(JSON.parse(JSON.stringify(c)));
    const deriveKey = algorithm.startsWith('PBKDF2') ? pbkdf2DeriveKey : shaDeriveKey;
    const result = await verifySolution({ challenge: c, solution, deriveKey, hmacSignatureSecret: secret });
    t.true(result.verified);
    // Same smallest counter as altcha-lib's reference solver.
    const reference = await solveChallenge({ challenge: c, deriveKey });
    t.is(solution.counter, reference!.counter);
    t.is(solution.derivedKey, reference!.derivedKey);
  });
}

test('the X-Altcha value decodes (atob + JSON.parse, as altcha-lib parses it) to the challenge and the solution', async (t) => {
  const c = await challenge('SHA-256', 1, '00');
  const solution = await solveAltcha(c);
  const header = encodeAltchaPayload(c, solution);
  const decoded = JSON.parse(atob(header));
  t.deepEqual(decoded.challenge, { parameters: c.parameters, signature: c.signature });
  t.deepEqual(decoded.solution, { counter: solution.counter, derivedKey: solution.derivedKey, time: solution.time });
  const result = await verifySolution({
    challenge: decoded.challenge,
    solution: decoded.solution,
    deriveKey: shaDeriveKey,
    hmacSignatureSecret: secret,
  });
  t.true(result.verified);
});

test('base64FromBytes equals the platform encoder for every tail length', (t) => {
  for (const s of ['', 'a', 'ab', 'abc', 'abcd', 'hello world!?', '\u00ff\u0000\u0080']) {
    const bytes = Uint8Array.from(s, (ch) => ch.charCodeAt(0));
    t.is(base64FromBytes(bytes), btoa(s));
  }
});

test('progress is reported between slices and the solver yields to the event loop while solving', async (t) => {
  // Prefix of 4 hex digits: ~65k attempts on average, many slices of 1 ms.
  const c = await challenge('SHA-256', 1, '0000');
  const progress: number[] = [];
  let timerRan = false;
  setTimeout(() => {
    timerRan = true;
  }, 0);
  let timerRanBeforeDone = false;
  const solution = await solveAltcha(c, {
    limits: { sliceMs: 1 },
    onProgress: (p) => {
      progress.push(p.attempts);
      if (timerRan) timerRanBeforeDone = true;
    },
  });
  t.true(solution.derivedKey.startsWith('0000'));
  t.true(progress.length > 0);
  t.true(timerRanBeforeDone);
  for (let i = 1; i < progress.length; i++) t.true(progress[i]! > progress[i - 1]!);
});

test('an unsupported algorithm is refused with unsupported_algorithm, not solved forever', async (t) => {
  const c = await challenge('SHA-256', 1, '00');
  const bad = { ...c, parameters: { ...c.parameters, algorithm: 'ARGON2ID' } };
  const e = await t.throwsAsync(createSliceSolver().solve(bad), { instanceOf: ChallengeUnsolvedError });
  t.is(e?.reason, 'unsupported_algorithm');
});

test('a malformed challenge is refused with invalid_challenge', (t) => {
  for (const body of [
    null,
    {},
    { parameters: { algorithm: 'SHA-256', nonce: 'zz', salt: '00', cost: 1, keyLength: 32, keyPrefix: '00' } },
    { parameters: { algorithm: 'SHA-256', nonce: '00', salt: '00', cost: 0, keyLength: 32, keyPrefix: '00' } },
    { parameters: { algorithm: 'SHA-256', nonce: '00', salt: '00', cost: 1, keyLength: 1, keyPrefix: '0000' } },
  ]) {
    const e = t.throws(() => parseChallenge(body), { instanceOf: ChallengeUnsolvedError });
    t.is(e?.reason, 'invalid_challenge');
  }
});

test('the attempt bound stops a challenge that has no solution in reach', async (t) => {
  const c = await challenge('SHA-256', 1, 'ffffffffffff');
  const e = await t.throwsAsync(solveAltcha(c, { limits: { solveAttemptsMax: 500 } }), {
    instanceOf: ChallengeUnsolvedError,
  });
  t.is(e?.reason, 'attempts_exhausted');
});

test('an abort stops the solver with the signal reason', async (t) => {
  const c = await challenge('SHA-256', 1, 'ffffffffffff');
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('user left the screen')), 20);
  await t.throwsAsync(solveAltcha(c, { signal: controller.signal, limits: { sliceMs: 2 } }), {
    message: 'user left the screen',
  });
});

test('a deterministic-mode challenge (server-chosen counter, key signature) is solved at exactly that counter', async (t) => {
  const c = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 777,
    deriveKey: shaDeriveKey,
    hmacSignatureSecret: secret,
    hmacKeySignatureSecret: 'key-secret',
  });
  const solution = await solveAltcha(c);
  t.is(solution.counter, 777);
  const result = await verifySolution({
    challenge: c,
    solution,
    deriveKey: shaDeriveKey,
    hmacSignatureSecret: secret,
    hmacKeySignatureSecret: 'key-secret',
  });
  t.true(result.verified);
});
