/**
 * The benchmark and fault-run scripts meet a wrong flag as the CLI does: one line naming it and the usage, exit 2,
 * no stack trace (they used to print parseArgs' TypeError with its stack). Run as a user runs them, through tsx.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const run = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', script), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

describe('script flags', () => {
  it('names an unknown flag and prints the usage, exit 2', () => {
    const r = run('bench-rl.ts', '--bogus');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("bench:rl: Unknown option '--bogus'\nusage: npm run bench:rl -- [--quick] [--json]\n");
    expect(r.stdout).toBe('');
  });

  it('names a flag whose value is missing', () => {
    const r = run('bench-tune.ts', '--k');
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("bench:tune: Option '--k <value>' argument missing");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
