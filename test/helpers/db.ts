/**
 * A fresh database per test file on the run's PostgreSQL: created, migrated with the committed migrations,
 * with its own application role (non-owner, the grants the app gets in production), dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { inject } from 'vitest';
import { ArtifactStore } from '../../registry/artifacts.ts';
import { appDatabaseUrl, connectDatabase, migrateDatabase, type Connection } from '../../registry/db.ts';
import { Registry } from '../../registry/registry.ts';
import { loadOrCreateKeys, type Keys } from '../../registry/signing.ts';
import { DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import type { Client } from '@temporalio/client';
import type { ActivityDeps } from '../../activities/deps.ts';
import { DropCache } from '../../domain/suites.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

/** A database of one's own: the owner's URL (migrations, tampering tests), the app role's URL, and drop(). */
export interface FreshDatabase {
  name: string;
  adminUrl: string;
  appUrl: string;
  appRole: string;
  drop(): Promise<void>;
}

function serverAdminUrl(): string {
  const url = inject('adminDatabaseUrl') ?? process.env.DATABASE_ADMIN_URL;
  if (!url) throw new Error('no PostgreSQL for tests: run under the stack project (global setup) or set DATABASE_ADMIN_URL');
  return url;
}

/** Creates and migrates a uniquely named database; `prefix` makes it recognisable (lower-case letters, digits, _). */
export async function freshDatabase(prefix: string): Promise<FreshDatabase> {
  const server = serverAdminUrl();
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .replace(/^[^a-z]+/, '')
      .slice(0, 30) || 'db';
  const name = `${clean}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const appRole = { name: `${name}_app`, password: randomBytes(18).toString('base64url') };
  const sql = postgres(server, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  const adminUrl = url.toString();
  await migrateDatabase(adminUrl, { appRole });
  return {
    name,
    adminUrl,
    appUrl: appDatabaseUrl(adminUrl, appRole),
    appRole: appRole.name,
    async drop() {
      const s = postgres(server, { max: 1, onnotice: () => {} });
      try {
        await s.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        await s.unsafe(`DROP ROLE IF EXISTS "${appRole.name}"`);
      } finally {
        await s.end({ timeout: 5 });
      }
    },
  };
}

/** A registry on a fresh database, connected as the application role, with its own store, keys and audit folder. */
export interface TestRegistry {
  registry: Registry;
  store: ArtifactStore;
  keys: Keys;
  database: FreshDatabase;
  /** The app role's connection (what the registry uses). */
  app: Connection;
  /** The data folder: artifacts/, keys/, audit/. */
  dir: string;
  auditDir: string;
  close(): Promise<void>;
}

/** Opens a registry the way the workers do, on a fresh database. */
export async function openTestRegistry(prefix: string, opts: { max?: number } = {}): Promise<TestRegistry> {
  const database = await freshDatabase(prefix);
  let base: string;
  try {
    base = inject('runDir') ?? tmpdir();
  } catch {
    base = tmpdir();
  }
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, `${prefix}-`));
  const app = connectDatabase(database.appUrl, { max: opts.max ?? 10 });
  const store = new ArtifactStore(join(dir, 'artifacts'));
  const keys = loadOrCreateKeys(join(dir, 'keys'));
  const auditDir = join(dir, 'audit');
  const registry = new Registry({ db: app.db, sql: app.sql, store, keys, auditDir });
  return {
    registry,
    store,
    keys,
    database,
    app,
    dir,
    auditDir,
    async close() {
      await app.close();
      await database.drop();
    },
  };
}

/**
 * What the activities need, over a test registry, to be called directly (in the SDK's activity test environment
 * or plainly): no Temporal client (nothing the tests call signals a workflow) and no workflow queue.
 */
export function activityDeps(t: TestRegistry, overrides: Partial<ActivityDeps> = {}): ActivityDeps {
  return {
    registry: t.registry,
    store: t.store,
    drops: new DropCache(t.store),
    dataDir: t.dir,
    client: {} as Client,
    codeRevision: 'test',
    workflowQueue: 'unused',
    ...overrides,
  };
}

/** A small JSON model config, recipe and gate rules: the registry stores them as data and does not read them. */
export const FIXTURE_LINE = {
  modelConfig: { vocabSize: 260, dModel: 16, nLayers: 1, nHeads: 2, context: 32, mlpRatio: 2 },
  recipe: { ...DEFAULT_RECIPE, steps: 10, learningRate: 0.001, seed: 7 },
  gateRules: { floors: {}, maxRegression: { loss: 0.05 }, minImprovement: {} },
};

/** Creates a line with fixture settings. */
export async function seedLine(registry: Registry, name: string, foundationLine?: string): Promise<void> {
  await registry.ensureLine({
    name,
    kind: foundationLine ? 'application' : 'foundation',
    ...(foundationLine ? { foundationLine } : {}),
    ...FIXTURE_LINE,
    actor: 'test',
  });
}

/** Records an accepted drop with unique content, stored in the artifact store as ingest stores it; returns its digest. */
export async function seedDrop(registry: Registry, line: string, source = 'fixture'): Promise<string> {
  const digest = await registry.store.put(Buffer.from(`{"text": "fixture ${randomBytes(12).toString('hex')}"}\n`));
  await registry.recordDrop({
    line,
    digest,
    source,
    status: 'accepted',
    counts: { records: 10, train: 8, heldOut: 2 },
    storedPath: registry.store.pathOf(digest),
  });
  return digest;
}

/** Trains nothing but goes through the registry's steps for a version: weights into the store, run started and finished, version created. */
export async function seedVersion(
  t: { registry: Registry; store: ArtifactStore },
  line: string,
  opts: {
    parent?: number | null;
    drops?: string[];
    foundation?: { line: string; version: number };
    key?: string;
    checkpoints?: { digest: string; step: number; resumed?: true }[];
  } = {},
): Promise<{ version: number; manifestDigest: string; weightsDigest: string; key: string }> {
  const key = opts.key ?? `run-${line}-${randomBytes(6).toString('hex')}`;
  const weightsDigest = await t.store.put(randomBytes(2048));
  const drops = opts.drops ?? [];
  await t.registry.startTrainingRun({ line, key, parentVersion: opts.parent ?? null, recipe: FIXTURE_LINE.recipe, seed: 7, drops });
  await t.registry.finishTrainingRun(key, {
    status: 'completed',
    steps: 10,
    tokens: 1000,
    flops: 1e9,
    wallMs: 50,
    backend: 'cpu',
    finalLoss: 2.5,
    artifactDigest: weightsDigest,
    ...(opts.checkpoints ? { checkpoints: opts.checkpoints } : {}),
  });
  const created = await t.registry.createVersion({
    line,
    trainingRunKey: key,
    parentVersion: opts.parent ?? null,
    ...(opts.foundation ? { foundationVersion: opts.foundation } : {}),
    weightsDigest,
    files: [],
    recipe: FIXTURE_LINE.recipe,
    drops,
    codeRevision: 'test-revision',
    seed: 7,
    backend: 'cpu',
    compute: { tokens: 1000, flops: 1e9, wallMs: 50, steps: 10 },
  });
  return { version: created.version, manifestDigest: created.manifestDigest, weightsDigest, key };
}
