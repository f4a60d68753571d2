/**
 * Path traversal probes: traversal strings and odd names tried everywhere a name from outside can meet the
 * file system — artifact digests (the store), drop paths (ingest reads them), quarantine folders (named by a
 * digest), and the names of lines, channels, applications, versions and sources (validated at the boundary;
 * they name workflows and rows, never files). An escape is any path produced, read or written outside the
 * data folder, or a protected file read as a drop. Shared by test/unit/security-paths.test.ts and
 * `npm run chaos`.
 */
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import fc from 'fast-check';
import { readDropFile } from '../../activities/ingest.ts';
import { ArtifactStore } from '../../registry/artifacts.ts';
import { Name as RegistryName } from '../../registry/inputs.ts';
import { loadOrCreateKeys } from '../../registry/signing.ts';
import { AppName, ChannelName, Digest, LineName, SourceName, VersionNumber, VersionRef } from '../../schemas/io.ts';
import { sourceName } from '../../client/ops.ts';

/** Strings an attacker (or an accident) would try. */
export const TRAVERSAL_STRINGS = [
  '..',
  '../',
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '/etc/passwd',
  '/',
  '.',
  '',
  ' ',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  '..%2f..%2f',
  '%252e%252e%252f',
  '....//....//',
  '..;/',
  '.../...//',
  '\u0000',
  'abc\u0000../../x',
  '．．／．．／',
  '\u2025/',
  'a/../../b',
  './././../x',
  '~/.ssh/id_rsa',
  '$HOME',
  '${HOME}',
  'C:\\Windows',
  '\\\\server\\share',
  'file:///etc/passwd',
  'http://example.com/x',
  '-rf',
  '--help',
  'a\nb',
  'a\rb',
  '\t',
  'CON',
  'x'.repeat(300),
  '.'.repeat(255),
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/../..',
  '../e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855',
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85',
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555',
  'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
];

/** Generated traversal-flavoured strings on top of the fixed list. */
export const traversalString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...TRAVERSAL_STRINGS),
  fc
    .tuple(
      fc.integer({ min: 1, max: 12 }),
      fc.constantFrom('../', '..\\', '%2e%2e/', '..%2f', './', '//'),
      fc.constantFrom('etc/passwd', 'keys/ed25519.key', 'x', ''),
    )
    .map(([n, up, tail]) => up.repeat(n) + tail),
  fc.tuple(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constantFrom('/..', '/../..', '\u0000', '/', '%00', ' ', '\n')).map(([h, tail]) => h + tail),
  fc.string({ maxLength: 80, unit: 'binary' }),
  fc.string({ maxLength: 20, unit: fc.constantFrom('.', '/', '\\', 'a', '%', '2', 'e', 'f', '\u0000', '~') }),
);

export interface TraversalReport {
  attempts: number;
  /** By where the string was tried. */
  byTarget: Record<string, number>;
  /** Each escape, described; empty when nothing got out. */
  escapes: string[];
}

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

/**
 * Tries `runs` generated strings (and every fixed one) against the store, drop reading and the name schemas,
 * in a scratch installation under `dir`; a secret planted next to the data folder must stay unread.
 */
export async function probeTraversal(dir: string, runs: number, seed = 7): Promise<TraversalReport> {
  const report: TraversalReport = { attempts: 0, byTarget: {}, escapes: [] };
  const count = (target: string) => {
    report.attempts++;
    report.byTarget[target] = (report.byTarget[target] ?? 0) + 1;
  };
  const dataDir = join(dir, 'data');
  const secret = join(dir, 'secret.txt');
  mkdirSync(join(dataDir, 'drops'), { recursive: true });
  writeFileSync(secret, '{"text": "outside the data folder"}\n');
  const store = new ArtifactStore(join(dataDir, 'artifacts'));
  const known = await store.put(new TextEncoder().encode('{"text": "in the store"}\n'));
  loadOrCreateKeys(join(dataDir, 'keys'));
  const keyFile = join(dataDir, 'keys', 'ed25519.key');
  // Ways to reach the key through the drop folder: a link to it, a link to its folder, a hard link.
  symlinkSync(keyFile, join(dataDir, 'drops', 'key-link.jsonl'));
  symlinkSync(join(dataDir, 'keys'), join(dataDir, 'drops', 'keys-folder'));
  linkSync(keyFile, join(dataDir, 'drops', 'hard-link.txt'));

  const strings = [...TRAVERSAL_STRINGS, ...fc.sample(traversalString, { numRuns: runs, seed })];
  for (const s of strings) {
    // The store: the only name it takes is a digest.
    count('artifact-store');
    try {
      const p = store.pathOf(s);
      if (!inside(store.root, p)) report.escapes.push(`store.pathOf(${JSON.stringify(s)}) = ${p}`);
      if (s !== known && !/^[0-9a-f]{64}$/.test(s)) report.escapes.push(`store.pathOf accepted ${JSON.stringify(s)}`);
    } catch {
      // refused: InvalidDigestError
    }
    for (const op of ['get', 'has', 'size'] as const) {
      count('artifact-store');
      try {
        const got = await store[op](s);
        if (op === 'has' && got === true && s !== known) report.escapes.push(`store.has(${JSON.stringify(s)}) is true`);
        if (op === 'get' && new TextDecoder().decode(got as Uint8Array).includes('outside the data folder'))
          report.escapes.push(`store.get(${JSON.stringify(s)}) read the secret`);
      } catch {
        // refused or missing
      }
    }
    // Drop paths: relative to the drop folder and to the data folder.
    for (const base of [join(dataDir, 'drops'), dataDir]) {
      count('drop-path');
      const path = resolve(base, s);
      const read = await readDropFile(path, dataDir);
      if ('bytes' in read) {
        const text = new TextDecoder().decode(read.bytes);
        if (text.includes('PRIVATE KEY')) report.escapes.push(`readDropFile(${JSON.stringify(path)}) read the signing key`);
        if (inside(join(dataDir, 'artifacts'), path)) report.escapes.push(`readDropFile(${JSON.stringify(path)}) read the store`);
      }
    }
    // Names: whatever a schema accepts is a single safe path segment (they are never used in paths, and must not be able to be).
    for (const [what, schema] of [
      ['line', LineName],
      ['channel', ChannelName],
      ['application', AppName],
      ['registry-name', RegistryName],
      ['digest', Digest],
    ] as const) {
      count('names');
      const r = schema.safeParse(s);
      if (
        r.success &&
        (r.data.includes('/') ||
          r.data.includes('\\') ||
          r.data.includes('..') ||
          r.data.includes('\u0000') ||
          !inside(dir, resolve(dir, r.data)) ||
          resolve(dir, r.data) === resolve(dir))
      )
        report.escapes.push(`${what} name ${JSON.stringify(s)} accepted`);
    }
    count('names');
    const source = SourceName.safeParse(s);
    if (source.success && (s.includes('/') || s.includes('\\') || s.includes('\u0000'))) report.escapes.push(`source name ${JSON.stringify(s)} accepted`);
    count('names');
    const derived = sourceName(`/drops/${s}.jsonl`);
    // A source name labels suites and rows and never names a file; it must at least be one segment.
    if (/[/\\\u0000-\u001f]/.test(derived)) report.escapes.push(`sourceName(${JSON.stringify(s)}) = ${JSON.stringify(derived)}`);
    count('names');
    const version = VersionNumber.safeParse(s);
    if (version.success && !(Number.isSafeInteger(version.data) && version.data > 0))
      report.escapes.push(`version ${JSON.stringify(s)} accepted as ${version.data}`);
    count('names');
    // (VersionRef's transform throws a ZodError for a bad channel instead of reporting it: refused either way.)
    let ref: ReturnType<typeof VersionRef.safeParse> | undefined;
    try {
      ref = VersionRef.safeParse(`line@${s}`);
    } catch {
      ref = undefined;
    }
    const channel = ref?.success ? (ref.data as { channel?: string }).channel : undefined;
    if (channel !== undefined && (channel.includes('/') || channel.includes('..'))) report.escapes.push(`ref line@${JSON.stringify(s)} accepted`);
  }
  // The fixed ways to the key through the drop folder.
  for (const p of ['key-link.jsonl', 'keys-folder/ed25519.key', 'hard-link.txt', '../keys/ed25519.key', './../keys//ed25519.key']) {
    count('drop-path');
    const read = await readDropFile(join(dataDir, 'drops', p), dataDir);
    if ('bytes' in read) report.escapes.push(`readDropFile(drops/${p}) read the signing key`);
  }
  return report;
}
