import { stack, uniqueId } from '@votestream/devstack';
import test from 'ava';
import { Redis } from 'ioredis';

test('redis stores a value, refuses a second SET NX on the same key, and expires it', async (t) => {
  const redis = new Redis(stack.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  t.teardown(() => redis.quit());
  const key = uniqueId('stack:redis:');
  t.is(await redis.set(key, 'first', 'PX', 60_000, 'NX'), 'OK');
  t.is(await redis.set(key, 'second', 'PX', 60_000, 'NX'), null);
  t.is(await redis.get(key), 'first');
  const ttl = await redis.pttl(key);
  t.true(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
  t.is(await redis.del(key), 1);
  t.is(await redis.get(key), null);
});
