/**
 * How a CLI command reaches the installation: the running stack's state file under the data folder, or
 * TEMPORAL_ADDRESS / DATABASE_URL from the environment (a real cluster and database).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { readRunningStack, type StackState } from '../stack/state.ts';
import { DEFAULT_DATA_DIR, DEFAULT_TASK_QUEUE, temporalConnectionOptions } from '../../workers/config.ts';
import { openRegistry as openInstallation } from '../../workers/wiring.ts';

export interface Target {
  dataDir: string;
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  taskQueue: string;
  uiUrl?: string;
  stack: StackState | null;
}

/** A failure the user can act on: printed without a stack trace, exit code 1. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function dataDir(): string {
  return resolve(process.env.PERENNIAL_DATA_DIR ?? DEFAULT_DATA_DIR);
}

/** Finds the installation to talk to, or says clearly that none is running. */
export function findTarget(): Target {
  const dir = dataDir();
  const stack = readRunningStack(dir);
  const temporalAddress = process.env.TEMPORAL_ADDRESS ?? stack?.temporal.address;
  const databaseUrl = process.env.DATABASE_URL ?? stack?.database.url;
  if (!temporalAddress || !databaseUrl) {
    throw new UserError(
      `no perennial stack is running for ${dir} (no live ${dir}/stack.json).\n` +
        'Start one with `npm start`, or set TEMPORAL_ADDRESS and DATABASE_URL to use a running Temporal cluster and PostgreSQL.',
    );
  }
  return {
    dataDir: dir,
    temporalAddress,
    namespace: process.env.TEMPORAL_NAMESPACE ?? stack?.temporal.namespace ?? 'default',
    databaseUrl,
    taskQueue: process.env.PERENNIAL_TASK_QUEUE ?? stack?.taskQueue ?? DEFAULT_TASK_QUEUE,
    uiUrl: stack?.temporal.uiUrl,
    stack,
  };
}

/** The registry of the running installation. Call close() when done. */
export function openRegistry(target: Target = findTarget()) {
  return openInstallation(target.databaseUrl, target.dataDir);
}

/** A Temporal client for the running installation. Call close() when done. */
export async function openClient(target: Target = findTarget()): Promise<{ client: Client; target: Target; close(): Promise<void> }> {
  const connection = await Connection.connect(temporalConnectionOptions(target.temporalAddress)).catch((err: Error) => {
    throw new UserError(`cannot reach Temporal at ${target.temporalAddress}: ${err.message}`);
  });
  return { client: new Client({ connection, namespace: target.namespace }), target, close: () => connection.close() };
}

/**
 * Checks that `path` (given as `arg`, e.g. `<file>` or `--evidence`) is a file this process can read, before
 * anything is sent: otherwise the line would record the digest of nothing for a file it never saw. Exit 2.
 */
export function readableFile(path: string, arg: string): string {
  const full = resolve(path);
  const stat = statOf(full, arg);
  if (stat.isDirectory()) throw new UserError(`${arg}: ${full} is a folder, not a file`, 2);
  if (!stat.isFile()) throw new UserError(`${arg}: ${full} is not a regular file`, 2);
  try {
    accessSync(full, constants.R_OK);
  } catch (err) {
    throw new UserError(`${arg}: ${full} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 2);
  }
  return full;
}

/** Checks that `path` is a folder this process can list (`watch <dir>`). Exit 2. */
export function readableFolder(path: string, arg: string): string {
  const full = resolve(path);
  if (!statOf(full, arg).isDirectory()) throw new UserError(`${arg}: ${full} is not a folder`, 2);
  try {
    accessSync(full, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new UserError(`${arg}: ${full} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 2);
  }
  return full;
}

function statOf(full: string, arg: string) {
  try {
    return statSync(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${arg}: ${full} does not exist` : `${arg}: ${full} cannot be read (${code ?? (err as Error).message})`, 2);
  }
}

/** Prints `value` as JSON when --json was given, else calls `human`. */
export function output(json: boolean | undefined, value: unknown, human: () => void): void {
  if (json) console.log(JSON.stringify(value, null, 2));
  else human();
}
