/**
 * Runs the real `perennial` bin as a child process, as a user's shell does: `node bin/perennial.mjs`, or
 * through a symlink named `perennial` in another folder, which is how npm links it for `npx perennial`
 * (`node_modules/.bin/perennial`). `env` is its whole environment (default: the test's).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

export const BIN = fileURLToPath(new URL('../../bin/perennial.mjs', import.meta.url));

/**
 * A folder like a project's node_modules/.bin holding `perennial` -> the real bin; returns the link's path.
 * Call it inside a test: the folder is removed when that test finishes, passed or failed.
 */
export function npxStyleLink(): string {
  const root = mkdtempSync(join(tmpdir(), 'perennial-npx-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'node_modules', '.bin');
  mkdirSync(dir, { recursive: true });
  const link = join(dir, 'perennial');
  symlinkSync(BIN, link);
  return link;
}

export interface BinResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/**
 * Runs `args` through the bin (or `opts.bin`, e.g. the npx-style link, executed directly so its shebang
 * line is what starts node). `closeStdout` closes the read end of its stdout at once, as `| head` does
 * when it has read enough.
 */
export function runBin(args: string[], opts: { bin?: string; env?: NodeJS.ProcessEnv; closeStdout?: boolean; timeoutMs?: number } = {}): Promise<BinResult> {
  const [cmd, argv] = opts.bin ? [opts.bin, args] : [process.execPath, [BIN, ...args]];
  const child = spawn(cmd, argv, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  if (opts.closeStdout) child.stdout.destroy();
  else child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() });
    });
  });
}
