/**
 * A release loop on the real stack for one test file: its own database, data folder, task queues and
 * in-process workers (workflow + training), against the run's PostgreSQL and Temporal dev server.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { DropCache } from '../../domain/suites.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import type { ActivityDeps } from '../../activities/deps.ts';
import { createTrainingWorker, createWorkflowWorker } from '../../workers/create.ts';
import { openRegistry } from '../../workers/wiring.ts';
import { PRESETS } from '../../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import type { LineSpec, Recipe } from '../../schemas/io.ts';
import { freshDatabase } from './db.ts';

let runtimeInstalled = false;

/** Writes `paragraphs` seeded paragraphs of general text as a JSONL drop file in `dir`; returns its path. */
export function writeTextDrop(dir: string, name: string, seed: number, paragraphs: number): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    generalText(rng(seed), paragraphs)
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n',
  );
  return path;
}

export interface TestLoop {
  name: string;
  client: Client;
  taskQueue: string;
  dataDir: string;
  deps: ActivityDeps;
  registry: ActivityDeps['registry'];
  databaseUrl: string;
  adminUrl: string;
  /** Creates a line with test-sized defaults (tiny model, few steps). */
  createLine(
    name: string,
    opts?: {
      kind?: 'foundation' | 'application';
      foundation?: string;
      recipe?: Partial<Recipe>;
      promotion?: Partial<LineSpec['promotion']>;
      gateRules?: Partial<LineSpec['gateRules']>;
    },
  ): Promise<LineSpec>;
  /** Starts (again) the in-process workers; stopWorkers() shuts them down. */
  startWorkers(which?: { workflow?: boolean; training?: boolean }): Promise<void>;
  stopWorkers(): Promise<void>;
  close(): Promise<void>;
}

/** The environment the CLI reads to reach this loop: its Temporal server, database, data folder and task queue. */
export function cliEnv(loop: TestLoop): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: (loop.client.connection as unknown as { options: { address: string } }).options.address,
    DATABASE_URL: loop.databaseUrl,
    PERENNIAL_DATA_DIR: loop.dataDir,
    PERENNIAL_TASK_QUEUE: loop.taskQueue,
  };
}

/** Test-sized recipe: the tiny model learns a few sentences in ~60 steps. */
export const TEST_RECIPE: Recipe = { ...DEFAULT_RECIPE, steps: 60, batchSize: 8, warmupSteps: 5, checkpointEvery: 20, learningRate: 5e-3 };

export async function startTestLoop(name: string): Promise<TestLoop> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const unique = `${name}-${process.pid}-${Date.now().toString(36)}`;
  const dataDir = join(inject('runDir'), unique);
  mkdirSync(dataDir, { recursive: true });
  const db = await freshDatabase(name.replace(/[^a-z0-9]/g, '_'));
  const installation = openRegistry(db.appUrl, dataDir);
  const address = inject('temporalAddress');
  const namespace = inject('temporalNamespace');
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const taskQueue = `test-${unique}`;
  const deps: ActivityDeps = {
    registry: installation.registry,
    store: installation.store,
    drops: new DropCache(installation.store),
    dataDir,
    client,
    codeRevision: 'test',
    workflowQueue: taskQueue,
  };
  const native = await NativeConnection.connect({ address });
  const running: { worker: Worker; done: Promise<void> }[] = [];
  const bundle = { codePath: inject('workflowBundlePath') };

  const loop: TestLoop = {
    name,
    client,
    taskQueue,
    dataDir,
    deps,
    registry: installation.registry,
    databaseUrl: db.appUrl,
    adminUrl: db.adminUrl,
    async createLine(lineName, opts = {}) {
      const kind = opts.kind ?? (opts.foundation ? 'application' : 'foundation');
      const spec: LineSpec = {
        name: lineName,
        kind,
        ...(opts.foundation ? { foundation: opts.foundation } : {}),
        modelConfig: PRESETS.tiny,
        recipe: { ...TEST_RECIPE, ...opts.recipe },
        gateRules: { ...DEFAULT_GATE_RULES, ...opts.gateRules },
        promotion: { ...DEFAULT_PROMOTION, ...opts.promotion },
      };
      await installation.registry.ensureLine({ ...spec, foundationLine: spec.foundation, actor: 'test' });
      return spec;
    },
    async startWorkers(which = { workflow: true, training: true }) {
      const opts = { connection: native, namespace, taskQueue, deps, bundle };
      const workers = [
        ...(which.workflow !== false ? [await createWorkflowWorker(opts)] : []),
        ...(which.training !== false ? [await createTrainingWorker(opts)] : []),
      ];
      for (const worker of workers) running.push({ worker, done: worker.run() });
    },
    async stopWorkers() {
      for (const r of running) if (r.worker.getState() === 'RUNNING') r.worker.shutdown();
      await Promise.allSettled(running.map((r) => r.done));
      running.length = 0;
    },
    async close() {
      await loop.stopWorkers();
      await native.close();
      await connection.close();
      await installation.close();
      await db.drop();
    },
  };
  return loop;
}
