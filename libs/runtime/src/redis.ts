import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { CommonConfig } from './config.ts';

/** A single Redis node (local stack) or a Redis Cluster (ElastiCache cluster mode). Both speak the same commands. */
export type RedisClient = Redis | Cluster;

export type RedisSettings = Pick<CommonConfig, 'redisUrl' | 'redisCluster' | 'redisPassword' | 'redisTlsCaPem'>;

/** Client options a caller may tune; in cluster mode they apply to every node connection. */
export type RedisClientOptions = Pick<
  RedisOptions,
  | 'enableAutoPipelining'
  | 'maxRetriesPerRequest'
  | 'connectTimeout'
  | 'commandTimeout'
  | 'enableOfflineQueue'
  | 'lazyConnect'
>;

/**
 * The one way the services open Redis. `redis://` is plaintext, `rediss://` is TLS (certificate verified
 * against `redisTlsCaPem` or Node's CA bundle). With `redisCluster` the URL's host:port is the seed of a
 * `Redis.Cluster` (ElastiCache: the configuration endpoint), which discovers the shards and follows
 * MOVED/ASK redirections. In cluster mode every multi-key command, script and pipeline must keep its keys
 * in one hash slot (the key design uses `{pollId}` and `{pollId/voterId}` hash tags for that).
 */
export function createRedis(settings: RedisSettings, options: RedisClientOptions = {}): RedisClient {
  const url = new URL(settings.redisUrl);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 6379 : Number(url.port);
  const username = url.username !== '' ? decodeURIComponent(url.username) : undefined;
  const password = settings.redisPassword ?? (url.password !== '' ? decodeURIComponent(url.password) : undefined);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  const tls: ConnectionOptions | undefined =
    url.protocol === 'rediss:'
      ? { rejectUnauthorized: true, ...(settings.redisTlsCaPem !== undefined ? { ca: [settings.redisTlsCaPem] } : {}) }
      : undefined;
  const node: RedisOptions = {
    ...options,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls ? { tls } : {}),
  };
  if (!settings.redisCluster) return new Redis({ ...node, host, port, db });
  return new Cluster([{ host, port }], {
    redisOptions: node,
    ...(options.enableAutoPipelining !== undefined ? { enableAutoPipelining: options.enableAutoPipelining } : {}),
    ...(options.enableOfflineQueue !== undefined ? { enableOfflineQueue: options.enableOfflineQueue } : {}),
    ...(options.lazyConnect !== undefined ? { lazyConnect: options.lazyConnect } : {}),
    // With TLS, connect to the names the cluster reports (ElastiCache's certificates name hosts, not IPs).
    ...(tls
      ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) }
      : {}),
    slotsRefreshTimeout: 2000,
  });
}

/**
 * The keys matching `pattern`, batch by batch, with SCAN (never KEYS): on each master of a cluster (a cluster
 * SCAN sent to the client would see only one node's keys), or on the single node.
 */
export async function* scanKeys(redis: RedisClient, pattern: string, count = 500): AsyncGenerator<string[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }
}
