/**
 * The running stack's state file (`<dataDir>/stack.json`): how the CLI finds Temporal and PostgreSQL, and
 * how a second `npm start` knows one is running. Written atomically; the owner's pid proves it is live.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

export interface StackState {
  pid: number;
  startedAt: string;
  dataDir: string;
  taskQueue: string;
  temporal: { address: string; namespace: string; uiUrl?: string; pid?: number; external: boolean; cli?: string };
  database: { url: string; pid?: number; external: boolean };
  workers: { workflow?: number; training: number[] };
  /** What the stack is doing now: starting, demo, serving. */
  phase: string;
}

export const statePath = (dataDir: string) => join(dataDir, 'stack.json');
const lockPath = (dataDir: string) => join(dataDir, 'stack.lock');

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live stack's state, or null when none runs (a state file left by a killed stack is ignored). */
export function readRunningStack(dataDir: string): StackState | null {
  if (!existsSync(statePath(dataDir))) return null;
  try {
    const state = JSON.parse(readFileSync(statePath(dataDir), 'utf8')) as StackState;
    return isAlive(state.pid) ? state : null;
  } catch {
    return null;
  }
}

/**
 * Makes the data folder its owner's (0700) and returns it. As root, with the embedded PostgreSQL (which runs as
 * `postgres` and must reach its own folder under it), the folder is 0711: others may pass through to a name they
 * know but not list it, and every folder and file below that holds data or secrets is 0700/0600 itself.
 */
export function privateDataDir(dataDir: string, opts: { embeddedPostgres?: boolean } = {}): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, opts.embeddedPostgres && userInfo().uid === 0 ? 0o711 : 0o700);
  return dataDir;
}

/** A folder under the data folder that holds data or secrets: 0700, also when an older version made it 0755. */
export function privateDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  return path;
}

/** Writes the state file, which holds the database URL with the application role's password: mode 0600. */
export function writeState(state: StackState): void {
  const path = statePath(state.dataDir);
  rmSync(`${path}.tmp`, { force: true }); // a leftover keeps its old mode; writeFileSync's mode applies on create
  writeFileSync(`${path}.tmp`, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/**
 * Takes the installation's lock: returns the pid of a live holder instead when there is one. The lock file
 * is created exclusively, so two `npm start` racing cannot both win.
 */
export function acquireStackLock(dataDir: string): { ok: true; release(): void } | { ok: false; holder: number } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = lockPath(dataDir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return {
        ok: true,
        release() {
          rmSync(statePath(dataDir), { force: true });
          rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(path, 'utf8'));
      if (isAlive(holder) && holder !== process.pid) return { ok: false, holder };
      rmSync(path, { force: true }); // left by a stack that was killed; take it over
    }
  }
  throw new Error(`could not take ${path}`);
}
