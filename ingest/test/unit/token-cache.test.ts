// cachedTokenVerifier (auth/tokens.ts): a verification is reused only for the same token bytes, never past the
// token's own refusal time or the reuse bound, refusals are never reused, and the cache is bounded.
import test from 'ava';
import { cachedTokenVerifier, type Principal, type TokenVerifier } from '../../src/auth/tokens.ts';

function countingVerifier(refusedAfterS: number) {
  const seen: string[] = [];
  const verify: TokenVerifier = async (authorization) => {
    seen.push(authorization ?? '');
    if (authorization?.includes('forged')) return { refused: 'untrusted token' };
    const principal: Principal = { voterId: `v-${authorization}`, tokenId: 'jti-1', refusedAfterS, scopes: new Set() };
    return principal;
  };
  return { verify, seen };
}

test('the same token is verified once and then reused; another token with the same jti is verified on its own', async (t) => {
  const { verify, seen } = countingVerifier(10_000);
  let nowMs = 1_000_000;
  const cached = cachedTokenVerifier(verify, { entriesMax: 10, reuseSMax: 300, nowMs: () => nowMs });
  const first = await cached('Bearer a');
  const again = await cached('Bearer a');
  t.is(again, first);
  t.deepEqual(seen, ['Bearer a']);
  await cached('Bearer b');
  t.deepEqual(seen, ['Bearer a', 'Bearer b']);
  nowMs += 1000;
  t.is(await cached('Bearer a'), first);
  t.is(seen.length, 2);
});

test('a reused verification ends at the token refusal time or after reuseSMax, whichever is first', async (t) => {
  const { verify, seen } = countingVerifier(1100); // refused from 1100 s on
  let nowMs = 1_000_000; // 1000 s
  const cached = cachedTokenVerifier(verify, { entriesMax: 10, reuseSMax: 300, nowMs: () => nowMs });
  await cached('Bearer a');
  nowMs = 1_099_999;
  await cached('Bearer a');
  t.is(seen.length, 1);
  nowMs = 1_100_000;
  await cached('Bearer a');
  t.is(seen.length, 2, 'at refusedAfterS the token is verified again (and the verifier refuses it for its age)');

  const long = countingVerifier(1_000_000);
  nowMs = 1_000_000;
  const bounded = cachedTokenVerifier(long.verify, { entriesMax: 10, reuseSMax: 300, nowMs: () => nowMs });
  await bounded('Bearer a');
  nowMs += 299_999;
  await bounded('Bearer a');
  t.is(long.seen.length, 1);
  nowMs += 1;
  await bounded('Bearer a');
  t.is(long.seen.length, 2, 'reuseSMax after the verification it is verified again');
});

test('refusals and missing headers are never reused; beyond entriesMax the oldest entry is dropped', async (t) => {
  const { verify, seen } = countingVerifier(10_000);
  const cached = cachedTokenVerifier(verify, { entriesMax: 2, reuseSMax: 300, nowMs: () => 1_000_000 });
  t.deepEqual(await cached('Bearer forged'), { refused: 'untrusted token' });
  t.deepEqual(await cached('Bearer forged'), { refused: 'untrusted token' });
  t.is(seen.length, 2);
  await cached(undefined);
  await cached(undefined);
  t.is(seen.length, 4);
  await cached('Bearer a');
  await cached('Bearer b');
  await cached('Bearer c'); // drops a
  await cached('Bearer b');
  await cached('Bearer c');
  t.is(seen.length, 7);
  await cached('Bearer a');
  t.is(seen.length, 8, 'the oldest entry was dropped when the cache was full');
});
