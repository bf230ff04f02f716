// verifyAltchaV2 (node:crypto, synchronous, on the vote path) must accept and refuse exactly what altcha-lib's
// own verifySolution does. altcha-lib is the oracle here: pure logic, no service involved.
import { type Challenge, createChallenge, type Solution, solveChallenge, verifySolution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import test from 'ava';
import { verifyAltchaV2 } from '../../src/abuse/challenge.ts';

const hmacKey = 'a'.repeat(64);
const keySecret = `${hmacKey}:derived-key`;

async function solved(): Promise<{ challenge: Challenge; solution: Solution }> {
  const challenge = await createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 37,
    deriveKey,
    hmacSignatureSecret: hmacKey,
    hmacKeySignatureSecret: keySecret,
    expiresAt: Math.floor(Date.now() / 1000) + 300,
  });
  const solution = await solveChallenge({ challenge, deriveKey });
  if (!solution) throw new Error('the test challenge was not solved');
  return { challenge, solution };
}

async function oracle(challenge: Challenge, solution: Solution): Promise<boolean> {
  const r = await verifySolution({
    challenge,
    solution,
    deriveKey,
    hmacSignatureSecret: hmacKey,
    hmacKeySignatureSecret: keySecret,
  });
  return r.verified;
}

const cases: Array<[string, (c: Challenge, s: Solution) => [Challenge, Solution]]> = [
  ['a correct solution', (c, s) => [c, s]],
  ['a tampered parameter', (c, s) => [{ ...c, parameters: { ...c.parameters, cost: 2 } }, s]],
  [
    'another derived key',
    (c, s) => [c, { ...s, derivedKey: `${s.derivedKey.slice(0, -2)}${s.derivedKey.endsWith('00') ? '01' : '00'}` }],
  ],
  ['an uppercase derived key', (c, s) => [c, { ...s, derivedKey: s.derivedKey.toUpperCase() }]],
  ['a counter out of range', (c, s) => [c, { ...s, counter: 2 ** 32 }]],
  ['a fractional counter', (c, s) => [c, { ...s, counter: 1.5 }]],
  ['no signature', (c, s) => [{ ...c, signature: undefined } as unknown as Challenge, s]],
  ['a signature made with another key', (c, s) => [{ ...c, signature: 'f'.repeat(64) }, s]],
  [
    'a key signature of another key',
    (c, s) => [{ ...c, parameters: { ...c.parameters, keySignature: '0'.repeat(64) } }, s],
  ],
];

for (const [name, mutate] of cases) {
  test(`verifyAltchaV2 agrees with altcha-lib on ${name}`, async (t) => {
    const { challenge, solution } = await solved();
    const [c, s] = mutate(challenge, solution);
    const expected = await oracle(c, s);
    t.is(verifyAltchaV2(c, s, hmacKey, keySecret), expected);
    if (name === 'a correct solution') t.true(expected);
    else t.false(expected);
  });
}
