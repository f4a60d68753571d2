/**
 * The local stack: PostgreSQL (embedded, or DATABASE_URL), Temporal (a dev server, or TEMPORAL_ADDRESS), the
 * committed migrations, the workflow bundle, and worker processes. Used by `npm start`, the chaos suite and
 * the tests that need separate worker processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { appDatabaseUrl, DEFAULT_APP_ROLE, migrateDatabase } from '../../registry/db.ts';
import { Connection } from '@temporalio/client';
import { bundleWorkflows } from '../../workers/bundle.ts';
import { temporalConnectionOptions } from '../../workers/config.ts';
import { startPostgres, type PostgresHandle } from './postgres.ts';
import { registerSearchAttributes, startTemporal, type TemporalHandle } from './temporal.ts';
import { killOnExit } from './wait.ts';
import { privateDataDir, privateDir, type StackState } from './state.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface StackOptions {
  dataDir: string;
  temporalPort: number;
  uiPort: number;
  postgresPort: number;
  namespace: string;
  taskQueue: string;
  trainingWorkers: number;
  headless?: boolean;
  log: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Restart a worker process that exits on its own (npm start does; the chaos suite restarts by hand). */
  supervise?: boolean;
}

export interface WorkerProcess {
  kind: 'workflow' | 'training';
  child: ChildProcess;
  ready: Promise<void>;
}

export interface Stack {
  state: StackState;
  postgres?: PostgresHandle;
  temporal?: TemporalHandle;
  workers: WorkerProcess[];
  workerEnv: NodeJS.ProcessEnv;
  /** Starts one more worker process of `kind` (the chaos suite restarts killed ones this way). */
  spawnWorker(kind: 'workflow' | 'training'): WorkerProcess;
  /** Stops workers first (they finish or hand back their tasks), then Temporal, then PostgreSQL. */
  stop(): Promise<void>;
}

/** Connection URL of the database, migrated, for the application's own role. */
async function prepareDatabase(opts: StackOptions, env: NodeJS.ProcessEnv): Promise<{ url: string; postgres?: PostgresHandle }> {
  if (env.DATABASE_URL) {
    // An operator's PostgreSQL: migrations run with the admin URL when given, else with the app's own.
    const appUser = decodeURIComponent(new URL(env.DATABASE_URL).username);
    if (env.DATABASE_ADMIN_URL) await migrateDatabase(env.DATABASE_ADMIN_URL, { appRole: { name: appUser } });
    else await migrateDatabase(env.DATABASE_URL);
    return { url: env.DATABASE_URL };
  }
  const root = join(opts.dataDir, 'postgres');
  const postgres = await startPostgres({ root, port: opts.postgresPort });
  const passwordFile = join(opts.dataDir, 'app-role-password');
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  chmodSync(passwordFile, 0o600);
  const role = { name: DEFAULT_APP_ROLE, password: readFileSync(passwordFile, 'utf8').trim() };
  await migrateDatabase(postgres.adminUrl, { appRole: role });
  return { url: appDatabaseUrl(postgres.adminUrl, role), postgres };
}

async function prepareTemporal(opts: StackOptions, env: NodeJS.ProcessEnv): Promise<{ address: string; temporal?: TemporalHandle }> {
  if (env.TEMPORAL_ADDRESS) {
    // A cluster of the operator's: connect the way the workers do (mTLS or API key from the environment).
    const connection = await Connection.connect(temporalConnectionOptions(env.TEMPORAL_ADDRESS, env));
    try {
      await registerSearchAttributes(env.TEMPORAL_ADDRESS, opts.namespace, connection);
    } finally {
      await connection.close();
    }
    return { address: env.TEMPORAL_ADDRESS };
  }
  const dir = privateDir(join(opts.dataDir, 'temporal')); // workflow histories
  const temporal = await startTemporal({
    dbFile: join(dir, 'temporal.db'),
    port: opts.temporalPort,
    uiPort: opts.uiPort,
    namespace: opts.namespace,
    headless: opts.headless,
    logFile: join(dir, 'server.log'),
  });
  return { address: temporal.address, temporal };
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const env = opts.env ?? process.env;
  // Everything the stack and its children (dev server, PostgreSQL, workers) create is their owner's alone:
  // the data folder holds drops, weights, the database URL with the app role's password, keys and logs.
  process.umask(0o077);
  const dataDir = privateDataDir(resolve(opts.dataDir), { embeddedPostgres: !env.DATABASE_URL });
  privateDir(join(dataDir, 'run'));
  privateDir(join(dataDir, 'logs'));
  const started = Date.now();
  const settled = await Promise.allSettled([prepareDatabase({ ...opts, dataDir }, env), prepareTemporal({ ...opts, dataDir }, env), bundleWorkflows()]);
  if (settled.some((s) => s.status === 'rejected')) {
    // Leave nothing running when start-up fails half-way.
    if (settled[1].status === 'fulfilled') await settled[1].value.temporal?.stop();
    if (settled[0].status === 'fulfilled') await settled[0].value.postgres?.stop();
    throw (settled.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
  }
  const [db, tmp, bundle] = settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof prepareDatabase>>,
    Awaited<ReturnType<typeof prepareTemporal>>,
    Awaited<ReturnType<typeof bundleWorkflows>>,
  ];
  const bundlePath = join(dataDir, 'run', 'workflow-bundle.js');
  await writeFile(bundlePath, bundle.code, { mode: 0o600 });
  opts.log(`PostgreSQL and Temporal ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const workerEnv: NodeJS.ProcessEnv = {
    ...env,
    TEMPORAL_ADDRESS: tmp.address,
    TEMPORAL_NAMESPACE: opts.namespace,
    DATABASE_URL: db.url,
    PERENNIAL_DATA_DIR: dataDir,
    PERENNIAL_TASK_QUEUE: opts.taskQueue,
    PERENNIAL_WORKFLOW_BUNDLE: bundlePath,
  };
  const workers: WorkerProcess[] = [];
  let stopping: Promise<void> | undefined;
  const spawnWorker = (kind: 'workflow' | 'training'): WorkerProcess => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'workers', 'main.ts'), kind], {
      cwd: PROJECT_ROOT,
      env: workerEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Worker output goes to a log file per process; the terminal keeps the stack's own progress.
    const logFile = createWriteStream(join(dataDir, 'logs', `${kind}-worker-${child.pid}.log`), { flags: 'a', mode: 0o600 });
    child.stderr!.pipe(logFile);
    const ready = new Promise<void>((ok, fail) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        logFile.write(line + '\n');
        if (line.includes('"ready"')) ok();
      });
      child.on('exit', (code, signal) => fail(new Error(`${kind} worker exited (${signal ?? code}) before it was ready`)));
    });
    ready.catch(() => undefined);
    child.on('exit', (code, signal) => {
      if (!opts.supervise || stopping) return;
      opts.log(`${kind} worker ${child.pid} exited (${signal ?? code}); starting a new one`);
      workers.splice(workers.indexOf(worker), 1);
      setTimeout(() => !stopping && spawnWorker(kind), 1000);
    });
    const worker = { kind, child, ready };
    killOnExit(child);
    workers.push(worker);
    return worker;
  };
  spawnWorker('workflow');
  for (let i = 0; i < opts.trainingWorkers; i++) spawnWorker('training');
  await Promise.all(workers.map((w) => w.ready));
  opts.log(`workers ready in ${((Date.now() - started) / 1000).toFixed(1)} s (logs in ${join(dataDir, 'logs')})`);

  const state: StackState = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    dataDir,
    taskQueue: opts.taskQueue,
    temporal: {
      address: tmp.address,
      namespace: opts.namespace,
      uiUrl: tmp.temporal?.uiUrl,
      pid: tmp.temporal?.pid,
      external: !tmp.temporal,
      cli: tmp.temporal?.cli,
    },
    database: { url: db.url, pid: db.postgres?.pid, external: !db.postgres },
    workers: {
      workflow: workers.find((w) => w.kind === 'workflow')?.child.pid,
      training: workers.filter((w) => w.kind === 'training').map((w) => w.child.pid!),
    },
    phase: 'starting',
  };

  return {
    state,
    postgres: db.postgres,
    temporal: tmp.temporal,
    workers,
    workerEnv,
    spawnWorker,
    stop() {
      stopping ??= (async () => {
        await Promise.all(workers.map((w) => stopChild(w.child)));
        await tmp.temporal?.stop();
        await db.postgres?.stop();
      })();
      return stopping;
    },
  };
}

/** SIGTERM, then SIGKILL after 15 s: a worker finishing a training step needs a moment to hand it back. */
export function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => (clearTimeout(timer), ok()));
    child.kill('SIGTERM');
  });
}
