/**
 * Path names: traversal strings and odd names for drops, lines, versions and artifacts never lead outside the
 * data folder. Digests are the only names that become paths (the store, quarantine/), and only as exactly 64
 * lower-case hex characters; drop paths are the user's files, read only when they are regular files outside
 * the installation's own folders; every other name is validated at the boundary and names rows and
 * workflows, never files.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { protectedFolders, readDropFile } from '../../activities/ingest.ts';
import { ArtifactStore } from '../../registry/artifacts.ts';
import { InvalidDigestError } from '../../schemas/contracts/errors.ts';
import { ChannelName, LineName, SourceName, VersionRef } from '../../schemas/io.ts';
import { probeTraversal } from '../../scripts/chaos/traversal.ts';

const dir = mkdtempSync(join(tmpdir(), 'perennial-paths-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('path traversal', () => {
  it('lets no traversal string out of the data folder, wherever it is tried', async () => {
    const report = await probeTraversal(join(dir, 'probe'), 300, 31);
    expect(report.escapes).toEqual([]);
    expect(report.attempts).toBeGreaterThan(3000);
    expect(Object.keys(report.byTarget).sort()).toEqual(['artifact-store', 'drop-path', 'names']);
  });

  it('refuses a digest that is not 64 lower-case hex characters before it names a file', async () => {
    const store = new ArtifactStore(join(dir, 'store'));
    for (const bad of ['../../etc/passwd', 'a'.repeat(63), 'A'.repeat(64), `${'a'.repeat(64)}/..`, `${'a'.repeat(64)}\u0000`]) {
      expect(() => store.pathOf(bad)).toThrow(InvalidDigestError);
      await expect(store.get(bad)).rejects.toThrow(/not a sha256 digest \(64 lower-case hex characters\)/);
    }
  });

  it("reads no drop from the installation's own folders, however the path gets there", async () => {
    const data = join(dir, 'install');
    // The test's whole folder is a root, so only the installation's folders stand in the way.
    const env = { PERENNIAL_DROP_ROOTS: dir };
    const { mkdirSync, writeFileSync, symlinkSync } = await import('node:fs');
    for (const f of protectedFolders(data)) mkdirSync(f.path, { recursive: true });
    mkdirSync(join(data, 'drops'), { recursive: true });
    writeFileSync(join(data, 'keys', 'ed25519.key'), '-----BEGIN PRIVATE KEY-----\n', { mode: 0o600 });
    symlinkSync(join(data, 'keys'), join(data, 'drops', 'k'));
    for (const p of [join(data, 'keys', 'ed25519.key'), join(data, 'drops', '..', 'keys', 'ed25519.key'), join(data, 'drops', 'k', 'ed25519.key')])
      expect(await readDropFile(p, data, env)).toEqual({ problem: "the path is inside the installation's keys folder; drops are read from elsewhere" });
    writeFileSync(join(data, 'artifacts', 'x'), 'y');
    expect(await readDropFile(join(data, 'artifacts', 'x'), data, env)).toMatchObject({ problem: expect.stringMatching(/artifacts folder/) });
    writeFileSync(join(data, 'drops', 'ok.jsonl'), '{"text":"fine"}\n');
    expect(await readDropFile(join(data, 'drops', 'ok.jsonl'), data, env)).toEqual({ bytes: Buffer.from('{"text":"fine"}\n') });
    // With no roots configured, only <data>/drops and <data>/demo-drops are read.
    expect(await readDropFile(join(data, 'drops', 'ok.jsonl'), data, {})).toEqual({ bytes: Buffer.from('{"text":"fine"}\n') });
  });

  it('names what is wrong with a name, in words a user can act on', () => {
    const message = (r: { success: boolean; error?: { issues: { message: string }[] } }) => r.error?.issues[0]?.message;
    expect(message(LineName.safeParse('../support'))).toBe(
      'a line name is 1-63 lowercase letters, digits and dashes, starting with a letter (so it is safe in paths, ids and URLs)',
    );
    expect(message(ChannelName.safeParse('stable/../x'))).toMatch(/^a channel name is 1-63 lowercase letters/);
    expect(message(SourceName.safeParse('a/b'))).toBe('a source name may not contain control characters or slashes');
    // VersionRef.parse (what the CLI calls) reports a bad channel; its safeParse throws instead (reported as a bug).
    expect(() => VersionRef.parse('support@../1')).toThrow(/a channel name is 1-63 lowercase letters/);
    expect(message(VersionRef.safeParse('../x@1'))).toBe('expected <line>@<version> or <line>@<channel>, got "../x@1"');
  });
});
