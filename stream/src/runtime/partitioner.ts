import { type ICustomPartitioner, Partitioners } from 'kafkajs';

/**
 * murmur2 (of the first `length` bytes of `data`) of Kafka's Java client (Utils.murmur2, seed 0x9747b28c), on 32-bit integers with Math.imul: the same
 * value as KafkaJS's `murmur2` (which computes it with Long objects, several allocations per 4 key bytes: ~10% of
 * the dedupe stage's CPU in the profile of bench/stream.ts).
 */
export function murmur2(data: Buffer, length = data.length): number {
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length & 3; // the tail bytes, as the Java switch with fall-through
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * KafkaJS's DefaultPartitioner (Java-compatible: an explicit partition wins, else toPositive(murmur2(key)) %
 * partitions), computed without Long allocations. Records without key and partition go to KafkaJS's own.
 */
export const fastDefaultPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message } = args;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key === null || key === undefined) return fallback(args);
    return keyPartition(key, args.partitionMetadata.length);
  };
};

/** The default partitioner's partition for a key among `count` partitions: toPositive(murmur2(key)) % count. */
export function keyPartition(key: string | Buffer, count: number): number {
  if (typeof key !== 'string') return (murmur2(key) & 0x7fffffff) % count;
  // A string key is encoded into a reused buffer (no Buffer per record); one longer than it could be gets its own.
  if (key.length * 3 > keyScratch.length) return (murmur2(Buffer.from(key)) & 0x7fffffff) % count;
  return (murmur2(keyScratch, keyScratch.write(key, 0, 'utf8')) & 0x7fffffff) % count;
}
/** UTF-8 of the key being partitioned (keyPartition is synchronous). */
const keyScratch = Buffer.alloc(4096);
