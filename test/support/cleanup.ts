import { DeleteBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Cluster } from 'ioredis';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import type { RedisClient } from '../../server/src/store/redis-client.ts';

/**
 * Deletes what one test deployment stored in the shared local services: its Redis keys (under
 * its prefix, and its BullMQ queues) and its bucket. Without this, every test run leaves its
 * messages behind, a GiB and more of them.
 */
export async function removeDeploymentState(redis: RedisClient, prefix: string, s3: S3Client, bucket: string): Promise<void> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    for (const match of [`${prefix}*`, `{${prefix}queues}*`]) {
      for await (const keys of node.scanStream({ match, count: 1000 })) {
        // One key a command: on a cluster, keys of one node may still be in different slots.
        await Promise.all((keys as string[]).map((key) => node.unlink(key)));
      }
    }
  }
  await removeBucket(s3, bucket);
}

/** Deletes a bucket and every object in it; one that does not exist is fine (nothing was stored there). */
export async function removeBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await new PayloadStore(s3, bucket).deletePrefix('');
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if (!(error instanceof Error && error.name === 'NoSuchBucket')) throw error;
  }
}
