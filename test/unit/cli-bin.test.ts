/**
 * The real bin, run the way users run it, with no stack: `npx perennial` reaches the CLI through a symlink
 * in node_modules/.bin, and a drop, watch folder or evidence file that is not there is refused (exit 2,
 * naming the path) before the command connects to anything. With no stack, a command that went on to
 * connect would answer "no perennial stack is running" (exit 1) instead.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { npxStyleLink, runBin } from '../helpers/bin.ts';

const dir = mkdtempSync(join(tmpdir(), 'perennial-bin-'));
// No stack: an empty data folder and none of the variables that name a cluster and a database.
const noStack: NodeJS.ProcessEnv = { ...process.env, PERENNIAL_DATA_DIR: join(dir, 'data') };
for (const k of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'PERENNIAL_TASK_QUEUE']) delete noStack[k];
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bin = (args: string[], opts: { bin?: string } = {}) => runBin(args, { ...opts, env: noStack });

describe('the perennial bin', () => {
  it('runs the CLI when started through an npx-style symlink named perennial', async () => {
    const link = npxStyleLink();
    const help = await bin(['--help'], { bin: link });
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: perennial \[options\] \[command\]/);
    expect(help.out).toMatch(/rollback \[options\] <line>/);
    // A command, not only commander's help: it runs, finds no stack, and says so.
    const status = await bin(['status'], { bin: link });
    expect(status.code).toBe(1);
    expect(status.err).toMatch(/no perennial stack is running/);
  });

  it.each([
    ['a missing file', () => join(dir, 'no-such-file.jsonl'), /<file>: \/.*no-such-file\.jsonl does not exist/],
    ['a folder', () => dir, /<file>: \/.* is a folder, not a file/],
  ])('refuses to drop %s before connecting, naming the path (exit 2)', async (_what, path, message) => {
    const r = await bin(['drop', 'support', path()]);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/no perennial stack|sent /);
    expect(r.out).toBe('');
    expect(r.code).toBe(2);
  });

  it.skipIf(process.getuid?.() === 0)('refuses to drop a file it cannot read (exit 2)', async () => {
    const secret = join(dir, 'secret.jsonl');
    writeFileSync(secret, '{"text":"hidden"}\n');
    chmodSync(secret, 0o000);
    const r = await bin(['drop', 'support', secret]);
    expect(r.err).toMatch(/<file>: \/.*secret\.jsonl cannot be read \(EACCES\)/);
    expect(r.code).toBe(2);
  });

  it('refuses a watch folder or regression evidence that is not there (exit 2)', async () => {
    const watch = await bin(['watch', join(dir, 'no-such-folder'), '--once']);
    expect(watch.err).toMatch(/<dir>: \/.*no-such-folder does not exist/);
    expect(watch.code).toBe(2);
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const notFolder = await bin(['watch', file, '--once']);
    expect(notFolder.err).toMatch(/<dir>: \/.*a-file is not a folder/);
    expect(notFolder.code).toBe(2);
    mkdirSync(join(dir, 'evidence-dir'));
    for (const [path, message] of [
      [join(dir, 'no-such-evidence.jsonl'), /--evidence: \/.*no-such-evidence\.jsonl does not exist/],
      [join(dir, 'evidence-dir'), /--evidence: \/.*evidence-dir is a folder, not a file/],
    ] as const) {
      const r = await bin(['report-regression', 'support', '--reason', 'worse', '--evidence', path]);
      expect(r.err).toMatch(message);
      expect(r.code).toBe(2);
    }
  });
});
