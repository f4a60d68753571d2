/** Builds the activities' dependencies from a runtime configuration: real connections, real store, real keys. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { ActivityDeps } from '../activities/deps.ts';
import { ArtifactStore } from '../registry/artifacts.ts';
import { connectDatabase } from '../registry/db.ts';
import { Registry } from '../registry/registry.ts';
import { loadOrCreateKeys } from '../registry/signing.ts';
import { DropCache } from '../domain/suites.ts';
import { temporalConnectionOptions, type RuntimeConfig } from './config.ts';

let revision: string | undefined;
/** The code revision recorded with every version: the git commit when there is one, else the package version. */
export function codeRevision(): string {
  if (revision) return revision;
  try {
    revision = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: import.meta.dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    revision = `perennial@${process.env.npm_package_version ?? 'unknown'}`;
  }
  return revision;
}

/** The registry, artifact store and keys of an installation. */
export function openRegistry(databaseUrl: string, dataDir: string) {
  const database = connectDatabase(databaseUrl);
  const store = new ArtifactStore(join(dataDir, 'artifacts'));
  const keys = loadOrCreateKeys(process.env.PERENNIAL_KEYS_DIR ?? join(dataDir, 'keys'));
  const registry = new Registry({ db: database.db, sql: database.sql, store, keys, auditDir: join(dataDir, 'audit') });
  return { registry, store, keys, close: () => database.close() };
}

export async function buildDeps(config: RuntimeConfig): Promise<{ deps: ActivityDeps; close(): Promise<void> }> {
  const opened = openRegistry(config.databaseUrl, config.dataDir);
  const connection = await Connection.connect(temporalConnectionOptions(config.temporalAddress));
  const client = new Client({ connection, namespace: config.namespace });
  const deps: ActivityDeps = {
    registry: opened.registry,
    store: opened.store,
    drops: new DropCache(opened.store),
    dataDir: config.dataDir,
    client,
    codeRevision: codeRevision(),
    workflowQueue: config.taskQueue,
  };
  return {
    deps,
    async close() {
      await connection.close();
      await opened.close();
    },
  };
}
