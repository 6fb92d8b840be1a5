import { ensureLocalServices } from '../../scripts/services/index.ts';
import type { BackendConfig } from './config.ts';

export interface ResolvedBackends extends BackendConfig {
  readonly redisUrl: string;
}

/**
 * Without MESHBOX_REDIS_URL / MESHBOX_S3_ENDPOINT, meshbox runs on the local development
 * services of scripts/services, starting them when they are not running.
 */
export async function resolveBackends<Config extends BackendConfig>(config: Config): Promise<Config & ResolvedBackends> {
  if (config.redisUrl && config.s3.endpoint) return { ...config, redisUrl: config.redisUrl };
  const local = await ensureLocalServices();
  return {
    ...config,
    redisUrl: config.redisUrl ?? local.redisUrl,
    s3: config.s3.endpoint
      ? config.s3
      : {
          ...config.s3,
          endpoint: local.s3.endpoint,
          region: local.s3.region,
          forcePathStyle: true,
          credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey },
        },
  };
}
