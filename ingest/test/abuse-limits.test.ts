import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { createRedis, type RedisClient } from '@votestream/runtime';
import test from 'ava';
import { adaptiveMaxNumber, createChallengePolicy } from '../src/abuse/challenge-policy.ts';
import { createRateLimits } from '../src/abuse/rate-limit.ts';
import { createClientAddressResolver, viewerAddressOf } from '../src/http/client-address.ts';
import { ProblemError } from '../src/http/problem.ts';
import { loadIngestConfig } from '../src/index.ts';

// ---- client address (pure logic) ----------------------------------------------------------------------------

const req = (peer: string, headers: Record<string, string> = {}) => ({ headers, socket: { remoteAddress: peer } });
const vpc = ['10.0.0.0/8'];

test('socket: the TCP peer, whatever the headers say', (t) => {
  const resolve = createClientAddressResolver({ source: 'socket', trustProxyHops: 1, trustedProxyCidrs: vpc });
  t.is(resolve(req('::ffff:203.0.113.7', { 'x-forwarded-for': '8.8.4.4' })), '203.0.113.7');
  t.is(resolve(req('203.0.113.7', { 'cloudfront-viewer-address': '8.8.4.4:443' })), '203.0.113.7');
});

test('alb: the hop the ALB appended; client-written entries to its left are ignored; untrusted peers are judged by the socket', (t) => {
  const resolve = createClientAddressResolver({ source: 'alb', trustProxyHops: 1, trustedProxyCidrs: vpc });
  const alb = '10.1.2.3';
  t.is(resolve(req(alb, { 'x-forwarded-for': '203.0.113.7' })), '203.0.113.7');
  t.is(resolve(req(alb, { 'x-forwarded-for': '8.8.4.4, 203.0.113.7' })), '203.0.113.7');
  t.is(resolve(req(alb, { 'x-forwarded-for': '1.1.1.1, 7.7.7.7, 203.0.113.7' })), '203.0.113.7');
  t.is(resolve(req(alb, { 'x-forwarded-for': '2001:db8::1' })), '2001:db8::1');
  // Not through the ALB: the peer itself.
  t.is(resolve(req('198.51.100.1', { 'x-forwarded-for': '8.8.4.4' })), '198.51.100.1');
  // Through the ALB but no header, or garbage where the address should be: the ALB (never a client's choice).
  t.is(resolve(req(alb)), alb);
  t.is(resolve(req(alb, { 'x-forwarded-for': 'not-an-ip' })), alb);
  // Two proxies (TRUST_PROXY_HOPS=2): the second from the right of [..., peer].
  const two = createClientAddressResolver({ source: 'alb', trustProxyHops: 2, trustedProxyCidrs: vpc });
  t.is(two(req(alb, { 'x-forwarded-for': '8.8.4.4, 203.0.113.7, 10.9.9.9' })), '203.0.113.7');
});

test('cloudfront: CloudFront-Viewer-Address, only through a trusted peer; X-Forwarded-For (CloudFront edge) is not the voter', (t) => {
  const resolve = createClientAddressResolver({ source: 'cloudfront', trustProxyHops: 1, trustedProxyCidrs: vpc });
  const alb = '10.1.2.3';
  const edge = '130.176.0.10';
  t.is(
    resolve(req(alb, { 'cloudfront-viewer-address': '203.0.113.7:46532', 'x-forwarded-for': `8.8.4.4, ${edge}` })),
    '203.0.113.7',
  );
  t.is(resolve(req(alb, { 'cloudfront-viewer-address': '2001:db8:1:2::7:46532' })), '2001:db8:1:2::7');
  t.is(resolve(req('198.51.100.1', { 'cloudfront-viewer-address': '8.8.4.4:1' })), '198.51.100.1');
  t.is(viewerAddressOf('garbage'), undefined);
  t.is(viewerAddressOf('999.1.1.1:80'), undefined);
});

test('TRUSTED_PROXY_CIDRS and the HTTP timeouts are validated at start-up with the variable named', (t) => {
  t.throws(() => loadIngestConfig({ TRUSTED_PROXY_CIDRS: '10.0.0.0/33' }), { message: /TRUSTED_PROXY_CIDRS/ });
  t.throws(() => loadIngestConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000', HTTP_HEADERS_TIMEOUT_MS: '60000' }), {
    message: /HTTP_HEADERS_TIMEOUT_MS/,
  });
  const c = loadIngestConfig({ RATE_FALLBACK_FLEET_SIZE: '12' });
  t.is(c.rateFallbackFleetSize, 12);
  t.true(c.http.headersTimeoutMs > c.http.keepAliveTimeoutMs && c.http.keepAliveTimeoutMs > 60_000);
});

// ---- rate limits while Redis is down (a real ioredis client whose server is gone) --------------------------

/** A Redis client pointed at a port where Redis is not (was listening, now closed): status never 'ready'. */
async function deadRedis(t: { teardown(fn: () => void): void }): Promise<RedisClient> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const redis = createRedis(
    { redisUrl: `redis://127.0.0.1:${port}`, redisCluster: false, redisPassword: undefined, redisTlsCaPem: undefined },
    { lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: false },
  );
  redis.on('error', () => {});
  t.teardown(() => redis.disconnect());
  return redis;
}

test('Redis down: the in-memory fallback allows only the fleet budget / RATE_FALLBACK_FLEET_SIZE on each instance', async (t) => {
  const redis = await deadRedis(t);
  t.not(redis.status, 'ready');
  const limits = createRateLimits({
    redis,
    keyPrefix: 'x:',
    voterPoints: 1000,
    voterDurationS: 60,
    networkPoints: 12, // the fleet's budget per network
    networkDurationS: 60,
    fleetSize: 4, // so this instance may take 3
  });
  const answers: number[] = [];
  for (let i = 0; i < 5; i++) answers.push(await limits.consume(`voter-${i}`, '203.0.113.0/24'));
  t.deepEqual(
    answers.map((a) => a > 0),
    [false, false, false, true, true],
  );
});

test('an unexpected limiter answer fails closed with 503 unavailable, never lets the request through', async (t) => {
  // Pure logic: a client that is "ready" but answers something that is not a counter.
  const fake = {
    status: 'ready',
    defineCommand() {},
    vsFixedWindow: async () => 'OK',
  } as unknown as RedisClient;
  const limits = createRateLimits({
    redis: fake,
    keyPrefix: 'x:',
    voterPoints: 10,
    voterDurationS: 60,
    networkPoints: 10,
    networkDurationS: 60,
    fleetSize: 1,
  });
  const err = await t.throwsAsync(limits.consume('v', 'n'));
  t.true(err instanceof ProblemError);
  t.is((err as ProblemError).code, 'unavailable');
});

// ---- adaptive proof-of-work difficulty ------------------------------------------------------------------------

test('adaptiveMaxNumber: base up to the baseline, doubling with velocity, never above the ceiling', (t) => {
  t.is(adaptiveMaxNumber(1000, 16_000, [0.2, 1, 0]), 1000);
  t.is(adaptiveMaxNumber(1000, 16_000, [1.5]), 2000);
  t.is(adaptiveMaxNumber(1000, 16_000, [0.1, 3.9, 2]), 4000);
  t.is(adaptiveMaxNumber(1000, 16_000, [1000]), 16_000);
});

test('challenge difficulty rises for a device (and network) asking too fast, on real Redis; other voters keep the base', async (t) => {
  const redis = createRedis(
    { redisUrl: 'redis://127.0.0.1:6379', redisCluster: false, redisPassword: undefined, redisTlsCaPem: undefined },
    { lazyConnect: false },
  );
  t.teardown(() => redis.disconnect());
  await new Promise<void>((resolve) => (redis.status === 'ready' ? resolve() : redis.once('ready', () => resolve())));
  // Each policy on its own key prefix (fresh counters).
  const policyWith = (voterChallengesMax: number) =>
    createChallengePolicy({
      redis,
      keyPrefix: `t-${randomBytes(5).toString('hex')}:`,
      windowS: 60,
      voterChallengesMax,
      voterBaseline: 5,
      networkBaseline: 20,
      deviceBaseline: 2,
      maxNumberBase: 1000,
      maxNumberCeiling: 8000,
    });
  const policy = policyWith(100);
  const net = '203.0.113.0/24';
  const farm: number[] = [];
  // One device, many accounts (a phone farm): 10 challenges, each for another voter.
  for (let i = 0; i < 10; i++) farm.push(await policy.admit(`acct-${i}`, net, 'device-farm'));
  t.deepEqual(farm, [1000, 1000, 2000, 2000, 4000, 4000, 4000, 4000, 8000, 8000]);
  // A real voter on another network and device: the base.
  t.is(await policy.admit('real-voter', '198.51.100.0/24', 'phone-1'), 1000);
  // Beyond voterChallengesMax: 429.
  const one = policyWith(2);
  await one.admit('v', net, null);
  await one.admit('v', net, null);
  const err = await t.throwsAsync(one.admit('v', net, null));
  t.is((err as ProblemError).code, 'rate_limited');
});
