/**
 * The Temporal side of the local stack: find the Temporal CLI, run `temporal server start-dev` with a
 * file-backed store, wait until its frontend answers, and register the project's search attributes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../../schemas/contracts/search-attributes.ts';
import { killOnExit, waitFor } from './wait.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VENV_TEMPORAL = join(PROJECT_ROOT, '.tools', 'temporal-venv', 'bin', 'temporal');

export interface TemporalCli {
  path: string;
  /** Where it was found: the env variable, PATH, the project venv. */
  source: 'TEMPORAL_CLI' | 'PATH' | 'venv';
}

function runs(path: string): boolean {
  return spawnSync(path, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Finds the Temporal CLI in the documented order; undefined means "let the SDK download it". */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): TemporalCli | undefined {
  if (env.TEMPORAL_CLI) {
    if (!runs(env.TEMPORAL_CLI)) throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} does not run (\`${env.TEMPORAL_CLI} --version\` failed)`);
    return { path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  for (const dir of (env.PATH ?? '').split(':')) {
    const candidate = join(dir, 'temporal');
    if (dir && existsSync(candidate) && runs(candidate)) return { path: candidate, source: 'PATH' };
  }
  if (existsSync(VENV_TEMPORAL) && runs(VENV_TEMPORAL)) return { path: VENV_TEMPORAL, source: 'venv' };
  return undefined;
}

export interface TemporalHandle {
  address: string;
  namespace: string;
  uiUrl?: string;
  pid?: number;
  cli: string;
  process?: ChildProcess;
  stop(): Promise<void>;
}

export interface StartTemporalOptions {
  dbFile: string;
  port: number;
  uiPort?: number;
  namespace: string;
  headless?: boolean;
  logFile?: string;
}

/** Starts a dev server with the found CLI, or with the SDK's downloaded one when none is found. */
export async function startTemporal(opts: StartTemporalOptions): Promise<TemporalHandle> {
  mkdirSync(dirname(opts.dbFile), { recursive: true });
  const cli = findTemporalCli();
  if (!cli) return startWithSdkDownload(opts);

  const args = [
    'server',
    'start-dev',
    '--db-filename',
    opts.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--namespace',
    opts.namespace,
    '--log-level',
    'warn',
    // Write-ahead log with fsync at checkpoints only: every history event is a SQLite transaction, and a
    // full fsync per transaction was ~30 ms of each cycle's orchestration. Still safe against a killed
    // server process (the chaos suite SIGKILLs it); only a power loss can drop the last transactions.
    ...(process.env.PERENNIAL_TEMPORAL_SYNC_FULL ? [] : ['--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal']),
    ...(opts.headless ? ['--headless'] : ['--ui-port', String(opts.uiPort ?? opts.port + 1000), '--ui-ip', '127.0.0.1']),
  ];
  const log = opts.logFile ? openSync(opts.logFile, 'a', 0o600) : 'ignore';
  const address = `127.0.0.1:${opts.port}`;
  let child: ChildProcess;
  let exitCode: number | null | undefined;
  let exit: Promise<void>;
  for (let attempt = 1; ; attempt++) {
    const c = spawn(cli.path, args, { stdio: ['ignore', log, log] });
    killOnExit(c);
    child = c;
    exitCode = undefined;
    exit = new Promise<void>((ok) => c.on('exit', (code) => ((exitCode = code), ok())));
    let exitedEarly = false;
    try {
      await waitUntilServing(address, opts.namespace, 60_000, () => {
        if (exitCode === undefined) return;
        exitedEarly = true;
        throw new Error(`temporal server start-dev exited with ${exitCode}${opts.logFile ? ` (see ${opts.logFile})` : ''}`);
      });
      break;
    } catch (err) {
      // Besides its frontend port the dev server binds ports it picks itself (HTTP API, metrics, internal
      // services); when another process takes one between its pick and its bind, it exits at once. A new
      // attempt picks again. A server that is slow to serve is not retried.
      if (!exitedEarly || attempt >= 3) throw err;
    }
  }
  await registerSearchAttributes(address, opts.namespace);
  return {
    address,
    namespace: opts.namespace,
    uiUrl: opts.headless ? undefined : `http://127.0.0.1:${opts.uiPort ?? opts.port + 1000}`,
    pid: child.pid,
    cli: `${cli.path} (${cli.source})`,
    process: child,
    async stop() {
      if (exitCode === undefined) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

async function startWithSdkDownload(opts: StartTemporalOptions): Promise<TemporalHandle> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'cached-download' },
      ip: '127.0.0.1',
      port: opts.port,
      dbFilename: opts.dbFile,
      namespace: opts.namespace,
      ui: !opts.headless,
      uiPort: opts.uiPort,
    },
  });
  const address = `127.0.0.1:${opts.port}`;
  await waitUntilServing(address, opts.namespace, 60_000, () => {});
  await registerSearchAttributes(address, opts.namespace);
  return {
    address,
    namespace: opts.namespace,
    uiUrl: opts.headless ? undefined : `http://127.0.0.1:${opts.uiPort ?? opts.port + 1000}`,
    cli: 'downloaded by @temporalio/testing',
    stop: () => env.teardown(),
  };
}

/** Waits until the frontend answers for `namespace` (the SDK's own wait is a fixed 5 s, too short here). */
export async function waitUntilServing(address: string, namespace: string, timeoutMs: number, check: () => void): Promise<void> {
  await waitFor(`Temporal at ${address}`, timeoutMs, async () => {
    check();
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    } catch {
      return false;
    } finally {
      await connection?.close();
    }
  });
}

/** Registers the project's search attributes on `namespace`; existing ones are left alone. */
export async function registerSearchAttributes(address: string, namespace: string, connection?: Connection): Promise<void> {
  const conn = connection ?? (await Connection.connect({ address }));
  try {
    const existing = await conn.operatorService.listSearchAttributes({ namespace });
    const have = new Set(Object.keys(existing.customAttributes ?? {}));
    const missing = Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTES)
        .filter(([name]) => !have.has(name))
        .map(([name, kind]) => [name, INDEXED_TYPE[kind]]),
    );
    if (Object.keys(missing).length === 0) return;
    try {
      await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
    } catch (err) {
      // gRPC ALREADY_EXISTS: another process registered them between our list and add.
      if ((err as { code?: number }).code !== 6) throw err;
    }
  } finally {
    if (!connection) await conn.close();
  }
}

const { IndexedValueType } = proto.temporal.api.enums.v1;
const INDEXED_TYPE = {
  KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
} as const;
