/**
 * Runtime configuration of the workers and the CLI, from the environment: where Temporal and PostgreSQL
 * are, where the installation's files live, and the task queue. The local stack sets these for its workers.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from '@temporalio/client';

export interface RuntimeConfig {
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  dataDir: string;
  /** The workflow task queue; training runs on `<taskQueue>.training`. */
  taskQueue: string;
}

export const DEFAULT_TASK_QUEUE = 'perennial';
export const DEFAULT_DATA_DIR = '.data';

export function runtimeConfigFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const missing = ['TEMPORAL_ADDRESS', 'DATABASE_URL'].filter((k) => !env[k]);
  if (missing.length) throw new Error(`${missing.join(' and ')} must be set for a worker (npm start sets them for its own workers)`);
  return {
    temporalAddress: env.TEMPORAL_ADDRESS!,
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    databaseUrl: env.DATABASE_URL!,
    dataDir: resolve(env.PERENNIAL_DATA_DIR ?? DEFAULT_DATA_DIR),
    taskQueue: env.PERENNIAL_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
  };
}

/**
 * TLS and API-key options for a Temporal cluster: mTLS with TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (PEM
 * files), an optional TEMPORAL_TLS_CA and TEMPORAL_TLS_SERVER_NAME, or TEMPORAL_API_KEY (Temporal Cloud).
 */
export function temporalConnectionOptions(address: string, env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  const read = (name: string) => (env[name] ? readFileSync(env[name]!) : undefined);
  const cert = read('TEMPORAL_TLS_CERT');
  const key = read('TEMPORAL_TLS_KEY');
  if (Boolean(cert) !== Boolean(key)) throw new Error('mTLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY');
  const ca = read('TEMPORAL_TLS_CA');
  const tls =
    cert || ca || env.TEMPORAL_API_KEY
      ? {
          ...(cert && key ? { clientCertPair: { crt: cert, key } } : {}),
          ...(ca ? { serverRootCACertificate: ca } : {}),
          ...(env.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME } : {}),
        }
      : undefined;
  return { address, ...(tls ? { tls } : {}), ...(env.TEMPORAL_API_KEY ? { apiKey: env.TEMPORAL_API_KEY } : {}) };
}
