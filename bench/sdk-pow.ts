/**
 * Proof-of-work solve speed of the SDK (WebCrypto, sliced, 8 derivations in flight) against altcha-lib's own
 * solveChallenge with its WebCrypto SHA-256 deriveKey (the baseline, one derivation at a time), on the same
 * challenges, in the same run. Ingest issues deterministic SHA-256 challenges with counter in [0, ALTCHA_MAX_NUMBER),
 * so the work per vote is counter+1 hashes.
 *   node --import tsx bench/sdk-pow.ts [challenges=20] [counter=20000]
 */
import { createChallenge, solveChallenge } from 'altcha-lib';
import { deriveKey as webSha } from 'altcha-lib/algorithms/web/sha';
import { solveAltcha } from '../sdk/src/pow.ts';

const challengesN = Number(process.argv[2] ?? 20);
const counter = Number(process.argv[3] ?? 20_000);
const secret = 'bench-secret';

const challenges = await Promise.all(
  Array.from({ length: challengesN }, () =>
    createChallenge({
      algorithm: 'SHA-256',
      cost: 1,
      counter,
      deriveKey: webSha,
      hmacSignatureSecret: secret,
      hmacKeySignatureSecret: 'k',
    }),
  ),
);

async function measure(name: string, solve: (c: (typeof challenges)[number]) => Promise<number>) {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let hashes = 0;
  for (const c of challenges) hashes += (await solve(c)) + 1;
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const perSecond = (hashes / ms) * 1000;
  console.log(
    `${name.padEnd(40)} ${hashes} hashes in ${ms.toFixed(0)} ms: ${Math.round(perSecond).toLocaleString('en')} hashes/s, ` +
      `${(ms / challengesN) | 0} ms per challenge, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms`,
  );
  return perSecond;
}

// Warm-up of both paths (JIT, WebCrypto init).
await solveAltcha(challenges[0]!);
await solveChallenge({ challenge: challenges[0]!, deriveKey: webSha });

const baseline = await measure('baseline: altcha-lib solveChallenge (web)', async (c) => {
  const s = await solveChallenge({ challenge: c, deriveKey: webSha });
  if (!s) throw new Error('unsolved');
  return s.counter;
});
const sdk1 = await measure(
  'sdk solveAltcha, 1 in flight',
  async (c) => (await solveAltcha(c, { limits: { parallelDerivations: 1 } })).counter,
);
const sdk = await measure('sdk solveAltcha, 8 in flight (default)', async (c) => (await solveAltcha(c)).counter);
console.log(
  `ratio sdk(default)/baseline: ${(sdk / baseline).toFixed(2)}x; sdk(1 in flight)/baseline: ${(sdk1 / baseline).toFixed(2)}x`,
);
console.log(
  `at ingest's default ALTCHA_MAX_NUMBER=100000 (mean 50000 hashes) this machine needs ~${Math.round((50_000 / sdk) * 1000)} ms per vote`,
);
