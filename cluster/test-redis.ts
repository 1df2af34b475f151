/**
 * The Redis the cluster suites run against: TEST_REDIS_URL, or the machine's own (127.0.0.1:6379, which `.ci/run`
 * starts when it is not running). Each suite gets a fresh key prefix, so runs sharing a Redis never meet.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A connected client and a prefix unique to this suite; fails with the fix when no Redis answers. */
export async function connectTestRedis(): Promise<{ redis: Redis; prefix: string; cleanup: () => Promise<void> }> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`the cluster suites need a Redis at ${TEST_REDIS_URL} (start one: redis-server --daemonize yes, or set TEST_REDIS_URL)`, { cause: err });
  }
  const prefix = `gdtest:${randomUUID().slice(0, 8)}:`;
  const cleanup = async (): Promise<void> => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  };
  return { redis, prefix, cleanup };
}
