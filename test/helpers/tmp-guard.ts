/**
 * A temporary folder of the run's own: TMPDIR points there for the test processes and everything they start,
 * and when the run ends it must be empty. Whatever a test, a helper or a stack left behind (a chaos
 * installation, a key pair) is listed and fails the run, and is removed all the same unless
 * PERENNIAL_KEEP_TEST_DATA is set (then nothing is removed or checked). A folder of its own, rather than a look
 * at the system's temporary folder, so that other runs on the same machine are not counted.
 *
 * Both projects list this setup; the first to start makes the folder, the last to finish checks it, after the
 * stack's own teardown (listed after this one, so torn down before it) has removed the run's folder.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Guard {
  dir: string;
  previous: string | undefined;
  users: number;
}

const KEY = Symbol.for('perennial.test-tmp-guard');
const shared = globalThis as { [KEY]?: Guard };

export default function setup() {
  let guard = shared[KEY];
  if (!guard) {
    const dir = mkdtempSync(join(tmpdir(), 'perennial-tmp-'));
    chmodSync(dir, 0o755); // the embedded PostgreSQL runs as `postgres` when we are root and must reach the run's folder in it
    guard = { dir, previous: process.env.TMPDIR, users: 0 };
    shared[KEY] = guard;
    // Read by os.tmpdir() on every call, here and in the test processes, which start after the global setups.
    process.env.TMPDIR = dir;
  }
  guard.users++;
  const g = guard;
  return () => {
    if (--g.users > 0) return;
    delete shared[KEY];
    if (g.previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = g.previous;
    if (process.env.PERENNIAL_KEEP_TEST_DATA) {
      console.error(`test data kept in ${g.dir}`);
      return;
    }
    // tsx keeps its compile cache in tsx-<uid> of the temporary folder: every `perennial` started makes it.
    const left = readdirSync(g.dir)
      .filter((name) => !/^tsx-\d+$/.test(name))
      .sort();
    rmSync(g.dir, { recursive: true, force: true });
    if (left.length > 0) {
      process.exitCode = 1;
      throw new Error(
        `the tests left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in the temporary folder: ${left.join(', ')}; ` +
          'each test removes what it makes, on success and on failure (now removed; PERENNIAL_KEEP_TEST_DATA=1 keeps them)',
      );
    }
  };
}
