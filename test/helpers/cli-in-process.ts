/** Runs the CLI's `main` in this process (against whatever TEMPORAL_ADDRESS / DATABASE_URL the test set): its exit code and what it printed. */
import { vi } from 'vitest';
import { main } from '../../scripts/cli.ts';

export async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  process.exitCode = undefined;
  try {
    const code = await main(['node', 'perennial', ...args]);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    process.exitCode = undefined;
  }
}
