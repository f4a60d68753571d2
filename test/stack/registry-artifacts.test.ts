/** Artifacts: content-addressed, atomically written, never outside the store; manifests signed per version and re-verified. */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactStore } from '../../registry/artifacts.ts';
import { canonicalJson } from '../../registry/canonical.ts';
import {
  MANIFEST_PAYLOAD_TYPE,
  generateKeys,
  signEnvelope,
  verifierFromPem,
  verifyEnvelope,
  type Envelope,
  type Keys,
} from '../../registry/signing.ts';
import { ArtifactIntegrityError, InvalidDigestError, InvalidInputError } from '../../schemas/contracts/errors.ts';
import { openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let admin: postgres.Sql;

beforeAll(async () => {
  t = await openTestRegistry('registry_artifacts');
  admin = postgres(t.database.adminUrl, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await admin?.end({ timeout: 5 });
  await t?.close();
});

/** Every file under `dir` with its size and mtime, to prove nothing was written there. */
function snapshot(dir: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (p === skip) continue;
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), `${statSync(p).size}:${statSync(p).mtimeMs}`);
    }
  };
  walk(dir);
  return out;
}

function verifyCli() {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'verify', 'tamper'], {
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: t.database.appUrl, PERENNIAL_DATA_DIR: t.dir, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    timeout: 60_000,
  });
}

describe('the store', () => {
  it('stores by sha256, writes atomically with read-only files, and dedups', async () => {
    const bytes = randomBytes(4096);
    const digest = await t.store.put(bytes);
    expect(digest).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(t.store.pathOf(digest)).toBe(join(t.store.root, 'sha256', digest.slice(0, 2), digest));
    // Weights and drops are data: the owner's alone (file 0400, folders 0700).
    expect(statSync(t.store.pathOf(digest)).mode & 0o777).toBe(0o400);
    for (const dir of [t.store.root, join(t.store.root, 'sha256'), join(t.store.root, 'sha256', digest.slice(0, 2)), join(t.store.root, 'tmp')])
      expect(statSync(dir).mode & 0o777, dir).toBe(0o700);
    expect(Buffer.from(await t.store.get(digest)).equals(bytes)).toBe(true);
    expect(await t.store.put(bytes)).toBe(digest);
    expect(readdirSync(join(t.store.root, 'tmp'))).toEqual([]);
    expect(await t.store.has(digest)).toBe(true);
    expect(await t.store.has('0'.repeat(64))).toBe(false);
  });

  const traversal = [
    '../x',
    '../../../../etc/passwd',
    '/etc/passwd',
    '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '%252e%252e%252f%252e%252e%252fescape',
    `${'a'.repeat(63)}\u0000`,
    `..${'/'.repeat(62)}`,
    'a'.repeat(62) + '/.',
    'A'.repeat(64),
    'sha256:' + 'a'.repeat(64),
    'a'.repeat(64) + '/../../../escape',
    '',
  ];

  it('refuses every name built from traversal strings, before touching the disk', async () => {
    const outside = dirname(t.store.root);
    const before = snapshot(outside, t.store.root);
    for (const name of traversal) {
      expect(() => t.store.pathOf(name), name).toThrow(InvalidDigestError);
      await expect(t.store.get(name), name).rejects.toThrow(InvalidDigestError);
      await expect(t.store.has(name), name).rejects.toThrow(InvalidDigestError);
      expect((await t.store.check(name)).problem, name).toMatch(/invalid digest/);
    }
    expect(snapshot(outside, t.store.root)).toEqual(before);
    expect(existsSync(join(outside, 'escape'))).toBe(false);
  });

  it('never writes through a link planted inside the store', async () => {
    const store = new ArtifactStore(join(t.dir, 'linked-store'));
    await store.put(Buffer.from('first'));
    const victim = join(t.dir, 'victim');
    mkdirSync(victim);
    // Content whose digest falls in a shard we replace with a link to the victim folder.
    let bytes: Buffer;
    let digest: string;
    do {
      bytes = randomBytes(32);
      digest = createHash('sha256').update(bytes).digest('hex');
    } while (!digest.startsWith('7'));
    const shard = join(store.root, 'sha256', digest.slice(0, 2));
    rmSync(shard, { recursive: true, force: true });
    symlinkSync(victim, shard);
    await expect(store.put(bytes)).rejects.toThrow(/symbolic link; refusing/);
    await expect(store.get(digest)).rejects.toThrow(ArtifactIntegrityError);
    expect(readdirSync(victim)).toEqual([]);
  });

  it('refuses a bad digest in a new version before anything is recorded', async () => {
    await seedLine(t.registry, 'badinput');
    await t.registry.startTrainingRun({ line: 'badinput', key: 'bad-1', parentVersion: null, recipe: {}, seed: 1, drops: [] });
    const weights = await t.store.put(randomBytes(16));
    for (const digest of ['../../../../etc/passwd', '%2e%2e%2f' + 'a'.repeat(55)]) {
      await expect(
        t.registry.createVersion({
          line: 'badinput',
          trainingRunKey: 'bad-1',
          parentVersion: null,
          weightsDigest: weights,
          files: [{ role: 'config', digest, size: 1 }],
          recipe: {},
          drops: [],
          codeRevision: 'rev',
          seed: 1,
          backend: 'cpu',
          compute: { tokens: 0, flops: 0, wallMs: 0 },
        }),
      ).rejects.toThrow(InvalidInputError);
    }
    expect(await t.registry.listVersions('badinput')).toEqual([]);
  });
});

describe('verification of stored versions', () => {
  let keys: Keys;
  const versions: { version: number; manifestDigest: string; weightsDigest: string }[] = [];

  beforeAll(async () => {
    keys = t.keys;
    await seedLine(t.registry, 'tamper');
    const drop = await seedDrop(t.registry, 'tamper');
    let parent: number | null = null;
    for (let i = 0; i < 6; i++) {
      const v = await seedVersion(t, 'tamper', { parent, drops: [drop] });
      versions.push(v);
      parent = v.version;
    }
  });

  const v = (n: number) => versions[n - 1]!;
  const weightsPath = (n: number) => t.store.pathOf(v(n).weightsDigest);

  it('passes when every file and signature is intact, and the CLI exits 0', async () => {
    const result = await t.registry.verifyArtifacts('tamper');
    expect(result).toMatchObject({ ok: true, checked: 6, problems: [] });
    // The manifest names its line and version and lists weights and recipe with digest and size.
    const version = await t.registry.getVersion('tamper', 2);
    expect(version.files.map((f) => f.role).sort()).toEqual(['recipe', 'weights']);
    const envelope = JSON.parse(Buffer.from(await t.store.get(version.manifestDigest)).toString()) as Envelope;
    expect(envelope.payloadType).toBe(MANIFEST_PAYLOAD_TYPE);
    expect(envelope.signatures[0]!.keyid).toBe(keys.keyId);
    // A third party with only the exported public key can check it.
    const publicKey = verifierFromPem(readFileSync(join(t.dir, 'keys', 'ed25519.pub.pem'), 'utf8'));
    const opened = verifyEnvelope(envelope, MANIFEST_PAYLOAD_TYPE, [publicKey]);
    expect(opened.ok).toBe(true);
    expect(JSON.parse((opened as { payload: Buffer }).payload.toString())).toMatchObject({ line: 'tamper', version: 2, parent: 1 });

    const cli = verifyCli();
    expect(cli.stdout).toMatch(/verified tamper: 6 version\(s\)/);
    expect(cli.status).toBe(0);
  });

  it('names a file with a flipped byte, a missing file and a file replaced by a link; the CLI exits 1', async () => {
    // v1: one byte flipped.
    chmodSync(weightsPath(1), 0o644);
    const bytes = readFileSync(weightsPath(1));
    bytes[100] = bytes[100]! ^ 0x01;
    writeFileSync(weightsPath(1), bytes);
    // v2: missing.
    unlinkSync(weightsPath(2));
    // v3: replaced by a link to a byte-identical copy outside the store (still refused: links are never followed).
    const copy = join(t.dir, 'copy-of-weights');
    writeFileSync(copy, readFileSync(weightsPath(3)));
    unlinkSync(weightsPath(3));
    symlinkSync(copy, weightsPath(3));

    const result = await t.registry.verifyArtifacts('tamper');
    expect(result.ok).toBe(false);
    const byVersion = (n: number) => result.problems.filter((p) => p.version === n);
    expect(byVersion(1)).toEqual([
      expect.objectContaining({ file: `weights ${v(1).weightsDigest}`, reason: expect.stringMatching(/^content hashes to [0-9a-f]{64}$/) }),
    ]);
    expect(byVersion(2)).toEqual([expect.objectContaining({ file: `weights ${v(2).weightsDigest}`, reason: 'missing' })]);
    expect(byVersion(3)).toEqual([expect.objectContaining({ file: `weights ${v(3).weightsDigest}`, reason: 'is a symbolic link (refused)' })]);
    expect(byVersion(4)).toEqual([]);
    await expect(t.store.get(v(3).weightsDigest)).rejects.toThrow(/symbolic link/);

    const cli = verifyCli();
    expect(cli.status).toBe(1);
    expect(cli.stdout).toContain(`FAIL tamper@1 weights ${v(1).weightsDigest}: content hashes to`);
    expect(cli.stdout).toContain(`FAIL tamper@2 weights ${v(2).weightsDigest}: missing`);
    expect(cli.stdout).toContain(`FAIL tamper@3 weights ${v(3).weightsDigest}: is a symbolic link (refused)`);

    // Repair: putting the same bytes back restores them (a link is replaced, not written through).
    renameSync(copy, `${copy}.bak`);
    await t.store.put(readFileSync(`${copy}.bak`));
    expect((await t.registry.verifyArtifacts('tamper', 3)).ok).toBe(true);
  });

  it('rejects a manifest signed with another key', async () => {
    const mallory = generateKeys();
    const genuine = JSON.parse(Buffer.from(await t.store.get(v(4).manifestDigest)).toString()) as Envelope;
    const payload = Buffer.from(genuine.payload, 'base64');
    // Mallory signs the same payload with her key, once under her key id and once claiming ours.
    const own = await t.store.put(Buffer.from(canonicalJson(signEnvelope(mallory, MANIFEST_PAYLOAD_TYPE, payload))));
    const claimed = signEnvelope(mallory, MANIFEST_PAYLOAD_TYPE, payload);
    claimed.signatures[0]!.keyid = keys.keyId;
    const spoofed = await t.store.put(Buffer.from(canonicalJson(claimed)));

    await admin`update versions set manifest_digest = ${own} where number = 4 and line_id = (select id from lines where name = 'tamper')`;
    let problems = (await t.registry.verifyArtifacts('tamper', 4)).problems;
    expect(problems).toEqual([expect.objectContaining({ version: 4, file: `manifest ${own}`, reason: expect.stringMatching(/signed by unknown key/) })]);

    await admin`update versions set manifest_digest = ${spoofed} where number = 4 and line_id = (select id from lines where name = 'tamper')`;
    problems = (await t.registry.verifyArtifacts('tamper', 4)).problems;
    expect(problems).toEqual([expect.objectContaining({ file: `manifest ${spoofed}`, reason: expect.stringMatching(/does not verify/) })]);
  });

  it('rejects a genuine signature replayed onto another version', async () => {
    // The whole envelope of version 5 recorded as version 6's manifest.
    await admin`update versions set manifest_digest = ${v(5).manifestDigest} where number = 6 and line_id = (select id from lines where name = 'tamper')`;
    const result = await t.registry.verifyArtifacts('tamper', 6);
    expect(result.problems).toEqual([
      expect.objectContaining({ version: 6, reason: 'the signed manifest is for tamper@5, not tamper@6 (a signature replayed onto another version)' }),
    ]);
    // Version 5's signature grafted onto a payload edited to say version 6.
    const env = JSON.parse(Buffer.from(await t.store.get(v(5).manifestDigest)).toString()) as Envelope;
    const edited = { ...(JSON.parse(Buffer.from(env.payload, 'base64').toString()) as Record<string, unknown>), version: 6 };
    const grafted = await t.store.put(Buffer.from(canonicalJson({ ...env, payload: Buffer.from(canonicalJson(edited)).toString('base64') })));
    await admin`update versions set manifest_digest = ${grafted} where number = 6 and line_id = (select id from lines where name = 'tamper')`;
    expect((await t.registry.verifyArtifacts('tamper', 6)).problems).toEqual([expect.objectContaining({ reason: expect.stringMatching(/does not verify/) })]);
  });

  it('reports a traversal digest inside a validly signed manifest without reading outside the store', async () => {
    // A compromised writer with the key signs a manifest naming files outside the store.
    const env = JSON.parse(Buffer.from(await t.store.get(v(5).manifestDigest)).toString()) as Envelope;
    const manifest = JSON.parse(Buffer.from(env.payload, 'base64').toString()) as { files: { role: string; digest: string; size: number }[] };
    const evil = ['../../../../etc/passwd', '%252e%252e%252fescape', `/etc/shadow`];
    manifest.files.push(...evil.map((digest) => ({ role: 'config', digest, size: 1 })));
    const signed = await t.store.put(Buffer.from(canonicalJson(signEnvelope(keys, MANIFEST_PAYLOAD_TYPE, Buffer.from(canonicalJson(manifest))))));
    await admin`update versions set manifest_digest = ${signed} where number = 5 and line_id = (select id from lines where name = 'tamper')`;
    const problems = (await t.registry.verifyArtifacts('tamper', 5)).problems;
    for (const digest of evil) {
      expect(problems).toContainEqual(expect.objectContaining({ file: `config ${digest}`, reason: expect.stringMatching(/invalid digest/) }));
    }
    // The schema keeps such names out of the registry's own tables.
    await expect(admin`insert into version_files (version_id, role, digest, size) values (1, 'config', '../../etc/passwd', 1)`).rejects.toThrow(
      /version_files_digest_format/,
    );
  });

  it('verifies the drops and checkpoints a version depends on, naming each one at fault', async () => {
    await seedLine(t.registry, 'deps');
    const d1 = await seedDrop(t.registry, 'deps', 'catalogue');
    const d2 = await seedDrop(t.registry, 'deps', 'prices');
    const checkpoint = await t.store.put(randomBytes(512));
    const v1 = await seedVersion(t, 'deps', { drops: [d1], checkpoints: [{ digest: checkpoint, step: 5 }] });
    const v2 = await seedVersion(t, 'deps', { parent: v1.version, drops: [d2] });
    expect(await t.registry.verifyArtifacts('deps')).toMatchObject({ ok: true, checked: 2 });

    // A flipped byte in a stored drop (its records feed v1's training and v2's replay), and in a checkpoint.
    const flip = (digest: string) => {
      const path = t.store.pathOf(digest);
      chmodSync(path, 0o600);
      const bytes = readFileSync(path);
      const original = Buffer.from(bytes);
      bytes[3] = bytes[3]! ^ 0x01;
      writeFileSync(path, bytes);
      return original;
    };
    const originals = [flip(d1), flip(checkpoint)];
    const all = await t.registry.verifyArtifacts('deps');
    expect(all.ok).toBe(false);
    expect(all.problems).toEqual([
      expect.objectContaining({ version: 1, file: `drop catalogue ${d1}`, reason: expect.stringMatching(/^content hashes to /) }),
      expect.objectContaining({ version: 1, file: `checkpoint ${checkpoint} (step 5)`, reason: expect.stringMatching(/^content hashes to /) }),
    ]);
    // Verifying v2 alone still names the drop it replays from v1.
    const one = await t.registry.verifyArtifacts('deps', v2.version);
    expect(one.problems).toEqual([
      expect.objectContaining({ version: 2, file: `drop catalogue ${d1} (replayed from deps@1)`, reason: expect.stringMatching(/^content hashes to /) }),
    ]);
    // Repair: the same bytes put back.
    for (const digest of [d1, checkpoint]) rmSync(t.store.pathOf(digest));
    expect((await t.registry.verifyArtifacts('deps')).problems.map((p) => p.reason)).toEqual(['missing', 'missing']);
    for (const bytes of originals) await t.store.put(bytes);
    expect((await t.registry.verifyArtifacts('deps')).ok).toBe(true);
  });

  it('verifies every version when given no target', async () => {
    const result = await t.registry.verifyArtifacts();
    expect(result.checked).toBeGreaterThanOrEqual(6);
    expect(result.ok).toBe(false);
    expect(new Set(result.problems.map((p) => p.version))).toEqual(new Set([1, 2, 4, 5, 6]));
  });
});
