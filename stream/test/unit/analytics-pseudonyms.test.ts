// The analytics view of a decision, without a broker: what is kept, what is coarsened, what never appears.
import { createHmac, randomBytes } from 'node:crypto';
import type { VoteDecision } from '@votestream/schemas';
import test from 'ava';
import { analyticsOf, clientFamilyOf, coarseNetworkPrefix, pseudonymOf } from '../../src/analytics/pseudonymise.ts';
import { makeVote } from '../support.ts';

test('a pseudonym is stable for one salt and voter, different across salts and voters, and 128 bits', (t) => {
  const [s1, s2] = [randomBytes(32), randomBytes(32)];
  t.is(pseudonymOf(s1, 'voter-1'), pseudonymOf(s1, 'voter-1'));
  t.not(pseudonymOf(s1, 'voter-1'), pseudonymOf(s2, 'voter-1'));
  t.not(pseudonymOf(s1, 'voter-1'), pseudonymOf(s1, 'voter-2'));
  t.is(Buffer.from(pseudonymOf(s1, 'voter-1'), 'base64url').length, 16);
});

test('a pseudonym is the first 16 bytes of HMAC-SHA256(salt, voterId), base64url, for any salt and voterId length', (t) => {
  const hmac = (salt: Buffer, voterId: string) =>
    createHmac('sha256', salt).update(voterId).digest().subarray(0, 16).toString('base64url');
  for (const salt of [randomBytes(32), randomBytes(64), randomBytes(65), randomBytes(1)]) {
    for (const voterId of ['voter-1', '', 'é€😀 voter', 'v'.repeat(341), 'v'.repeat(342), 'x'.repeat(5000)]) {
      t.is(pseudonymOf(salt, voterId), hmac(salt, voterId), `salt ${salt.length} B, voterId ${voterId.length} chars`);
    }
    t.is(pseudonymOf(salt, 'voter-2'), hmac(salt, 'voter-2')); // the scratch buffer holds no earlier voterId
  }
});

test('networks are coarsened to /16 (IPv4) and /32 (IPv6); anything else is dropped', (t) => {
  t.is(coarseNetworkPrefix('203.0.113.0/24'), '203.0.0.0/16');
  t.is(coarseNetworkPrefix('2001:db8:abcd::/48'), '2001:db8::/32');
  t.is(coarseNetworkPrefix('2001:DB8:ab::/48'), '2001:db8::/32');
  t.is(coarseNetworkPrefix('unknown'), null);
  t.is(coarseNetworkPrefix('10.1.2.3'), null);
});

test('a client is reduced to its first product token and major version', (t) => {
  t.is(clientFamilyOf('votestream-sdk/1.4.2 (iOS 18; iPhone15,2)'), 'votestream-sdk/1');
  t.is(clientFamilyOf('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36'), 'Mozilla/5');
  t.is(clientFamilyOf('curl'), null);
  t.is(clientFamilyOf(null), null);
  t.is(clientFamilyOf('}{\n/1'), null);
});

test('the analytics record of a decision holds no identity of the voter', (t) => {
  const vote = makeVote('poll-1', 'alice@example.org', 'yes', 1_780_000_000_123);
  vote.evidence = {
    challenge: 'SOLVED',
    challengeId: 'challenge-secret',
    tokenId: 'jti-secret',
    networkPrefix: '198.51.100.0/24',
    userAgent: 'votestream-sdk/2.0.1 (Android 15; Pixel 9)',
    deviceId: 'device-secret',
    attestation: 'attestation-secret',
  };
  const decision: VoteDecision = {
    vote,
    outcome: 'REJECTED',
    reason: 'DUPLICATE',
    countedVoteId: 'aaaaaaaa-0000-4000-8000-000000000000',
    late: true,
    windowStart: 1_780_000_000_000,
    decidedAt: 1_780_000_000_500,
  };
  const salt = randomBytes(32);
  const a = analyticsOf(decision, salt);
  t.deepEqual(a, {
    pollId: 'poll-1',
    voterPseudonym: pseudonymOf(salt, 'alice@example.org'),
    optionId: 'yes',
    counted: false,
    reason: 'DUPLICATE',
    late: true,
    windowStart: 1_780_000_000_000,
    networkPrefix: '198.51.0.0/16',
    clientFamily: 'votestream-sdk/2',
    challengeSolved: true,
  });
  const text = JSON.stringify(a);
  for (const secret of ['alice', 'secret', vote.voteId, 'aaaaaaaa', 'Pixel', '100.0'])
    t.false(text.includes(secret), secret);
});
