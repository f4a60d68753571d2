/** The registry's plumbing: migrations and roles, keys, the Merkle tree, and the idempotency of each write. */
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MerkleTree } from '../../registry/audit.ts';
import { canonicalJson } from '../../registry/canonical.ts';
import { MIGRATIONS_FOLDER, migrateDatabase } from '../../registry/db.ts';
import { loadOrCreateKeys, pae } from '../../registry/signing.ts';
import { InvalidInputError, NotFoundError, RegistryConflictError } from '../../schemas/contracts/errors.ts';
import { FIXTURE_LINE, openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;

beforeAll(async () => {
  t = await openTestRegistry('registry_core');
});
afterAll(async () => {
  await t?.close();
});

describe('migrations and the application role', () => {
  it('re-runs migrations idempotently, also from two processes at once', async () => {
    const role = { name: t.database.appRole, password: 'rotated-password' };
    await Promise.all([migrateDatabase(t.database.adminUrl, { appRole: role }), migrateDatabase(t.database.adminUrl, { appRole: role })]);
    const admin = postgres(t.database.adminUrl, { max: 1, onnotice: () => {} });
    try {
      const [{ n }] = (await admin`select count(*)::int as n from drizzle.__drizzle_migrations`) as unknown as [{ n: number }];
      // Each committed migration applied once (not twice by the two processes).
      const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
      expect(n).toBe(journal.entries.length);
      const [{ owner }] = (await admin`select tableowner as owner from pg_tables where tablename = 'versions'`) as unknown as [{ owner: string }];
      expect(owner).not.toBe(t.database.appRole);
    } finally {
      await admin.end();
    }
    // The password was reset to the one given.
    const app = postgres(t.database.appUrl.replace(/:[^:@/]*@/, ':rotated-password@'), { max: 1, onnotice: () => {} });
    try {
      expect((await app`select current_user as u`)[0]!.u).toBe(t.database.appRole);
    } finally {
      await app.end();
    }
    await migrateDatabase(t.database.adminUrl, { appRole: { name: t.database.appRole, password: decodeURIComponent(new URL(t.database.appUrl).password) } });
  });

  it('gives the application role no DDL and no deletes', async () => {
    await expect(t.app.sql`create table evil (x int)`).rejects.toThrow(/permission denied for schema public/);
    await expect(t.app.sql`delete from versions`).rejects.toThrow(/permission denied for table versions/);
    await expect(t.app.sql`update versions set seed = 0`).rejects.toThrow(/permission denied for table versions/);
    await expect(t.app.sql`update data_drops set digest = 'x'`).rejects.toThrow(/permission denied for table data_drops/);
    await expect(t.app.sql`truncate lines cascade`).rejects.toThrow(/permission denied/);
  });
});

describe('keys', () => {
  it('creates the key pair once with mode 0600, exports the public key, and names it by the sha256 of its SPKI', () => {
    const dir = mkdtempSync(join(tmpdir(), 'perennial-keys-'));
    try {
      const a = loadOrCreateKeys(dir);
      const b = loadOrCreateKeys(dir);
      expect(b.keyId).toBe(a.keyId);
      expect(statSync(join(dir, 'ed25519.key')).mode & 0o777).toBe(0o600);
      const pem = readFileSync(join(dir, 'ed25519.pub.pem'), 'utf8');
      expect(pem).toBe(a.publicKeyPem);
      const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
      expect(a.keyId).toBe(createHash('sha256').update(der).digest('hex'));
      const message = Buffer.from('hello');
      expect(a.verify(message, a.sign(message))).toBe(true);
      expect(a.verify(Buffer.from('hellO'), a.sign(message))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true }); // a private key: never left in the shared temporary folder
    }
  });

  it('encodes DSSE PAE as the spec says', () => {
    expect(Buffer.from(pae('http://example.com/HelloWorld', Buffer.from('hello world'))).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });
});

describe('Merkle tree', () => {
  /** RFC 6962 MTH, written out recursively as the RFC states it. */
  function mth(leaves: string[]): string {
    const h = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    const rec = (d: string[]): Buffer => {
      if (d.length === 0) return createHash('sha256').digest();
      if (d.length === 1) return h(Buffer.from([0]), Buffer.from(d[0]!));
      let k = 1;
      while (k * 2 < d.length) k *= 2;
      return h(Buffer.from([1]), rec(d.slice(0, k)), rec(d.slice(k)));
    };
    return rec(leaves).toString('hex');
  }

  it('computes the RFC 6962 root of every prefix', () => {
    const leaves = Array.from({ length: 37 }, (_, i) => canonicalJson({ i }));
    const tree = new MerkleTree();
    for (const l of leaves) tree.push(l);
    for (let n = 0; n <= leaves.length; n++) expect(tree.root(n), `size ${n}`).toBe(mth(leaves.slice(0, n)));
  });
});

describe('writes are idempotent by their natural keys', () => {
  it('ensureLine returns the line and refuses to redefine it', async () => {
    await seedLine(t.registry, 'found');
    await seedLine(t.registry, 'app', 'found');
    const line = await t.registry.getLine('app');
    expect(line).toMatchObject({ name: 'app', kind: 'application', foundationLine: 'found', latestVersion: null, modelConfig: FIXTURE_LINE.modelConfig });
    expect((await t.registry.getChannels('app')).map((c) => c.channel)).toEqual(['candidate', 'canary', 'stable']);
    await seedLine(t.registry, 'app', 'found');
    await expect(seedLine(t.registry, 'app')).rejects.toThrow(RegistryConflictError);
    await expect(seedLine(t.registry, 'app2', 'app')).rejects.toThrow(/application line; an application line builds on a foundation line/);
    await expect(t.registry.getLine('nope')).rejects.toThrow(NotFoundError);
    await expect(t.registry.ensureLine({ name: 'Bad/Name', kind: 'foundation', ...FIXTURE_LINE, actor: 'x' })).rejects.toThrow(InvalidInputError);
    // A recipe or gate rules no cycle could run with are refused when stored, naming the field.
    const stuck = { ...FIXTURE_LINE, recipe: { ...FIXTURE_LINE.recipe, checkpointEvery: 0 } };
    await expect(t.registry.ensureLine({ name: 'stuck', kind: 'foundation', ...stuck, actor: 'x' })).rejects.toThrow(/recipe\.checkpointEvery/);
    await expect(t.registry.updateLine({ name: 'app', gateRules: { floors: { loss: 3 } }, actor: 'alice', reason: 'x' })).rejects.toThrow(/gateRules\.maxRegression/);
    const tighter = { ...FIXTURE_LINE.gateRules, floors: { loss: 3 } };
    const updated = await t.registry.updateLine({ name: 'app', gateRules: tighter, actor: 'alice', reason: 'tighter floor' });
    expect(updated.gateRules).toEqual(tighter);
    expect((await t.registry.listAudit({ subject: 'app' })).map((e) => e.action)).toEqual(['line.create', 'line.update']);
  });

  it('recordDrop, ensureSuite, training runs and evaluations return what exists on a retry', async () => {
    const drop = await seedDrop(t.registry, 'found');
    const again = await t.registry.recordDrop({
      line: 'found',
      digest: drop,
      source: 'other',
      status: 'accepted',
      counts: { records: 1, train: 1, heldOut: 0 },
      storedPath: '/x',
    });
    expect(again).toMatchObject({ existed: true, drop: { source: 'fixture', counts: { records: 10 } } });
    await expect(
      t.registry.recordDrop({
        line: 'found',
        digest: 'b'.repeat(64),
        source: 's',
        status: 'quarantined',
        counts: { records: 0, train: 0, heldOut: 0 },
        storedPath: '/q',
      }),
    ).rejects.toThrow(/data_drops_reason_when_not_accepted|reason/);
    const quarantined = 'c'.repeat(64);
    await t.registry.recordDrop({
      line: 'found',
      digest: quarantined,
      source: 's',
      status: 'quarantined',
      counts: { records: 3, train: 0, heldOut: 0 },
      reason: 'line 2 is not JSON',
      storedPath: '/q',
    });
    await expect(t.registry.startTrainingRun({ line: 'found', key: 'k-q', parentVersion: null, recipe: {}, seed: 1, drops: [quarantined] })).rejects.toThrow(
      /quarantined; only accepted drops/,
    );

    const suite = { line: 'found', name: 'Products.jsonl-3f2a9c1d', kind: 'text', dataDigest: 'd'.repeat(64), dropDigest: drop };
    expect(await t.registry.ensureSuite(suite)).toMatchObject({ name: suite.name, dropDigest: drop });
    expect(await t.registry.ensureSuite(suite)).toMatchObject({ name: suite.name });
    await expect(t.registry.ensureSuite({ ...suite, dataDigest: 'e'.repeat(64) })).rejects.toThrow(RegistryConflictError);

    const v = await seedVersion(t, 'found', { drops: [drop] });
    await t.registry.recordEvaluation({
      line: 'found',
      version: v.version,
      suite: suite.name,
      metrics: { loss: 2.5 },
      dataDigest: 'd'.repeat(64),
      backend: 'cpu',
    });
    await t.registry.recordEvaluation({
      line: 'found',
      version: v.version,
      suite: suite.name,
      metrics: { loss: 2.4 },
      dataDigest: 'd'.repeat(64),
      backend: 'cpu',
    });
    expect(await t.registry.getEvaluations('found', v.version)).toEqual([
      expect.objectContaining({ suite: suite.name, suiteLine: 'found', metrics: { loss: 2.4 }, dataDigest: 'd'.repeat(64) }),
    ]);
    // An application version is measured on its foundation's suites too.
    const appV = await seedVersion(t, 'app', { foundation: { line: 'found', version: v.version } });
    await t.registry.recordEvaluation({ line: 'app', version: appV.version, suite: suite.name, suiteLine: 'found', metrics: { loss: 2.6 } });
    expect((await t.registry.getEvaluations('app'))[0]).toMatchObject({ suiteLine: 'found', version: appV.version });

    const run = await t.registry.getTrainingRun(v.key);
    expect(run).toMatchObject({ status: 'completed', version: v.version, drops: [drop] });
    expect(await t.registry.finishTrainingRun(v.key, { status: 'completed' })).toMatchObject({ status: 'completed', steps: 10 });
    await expect(t.registry.finishTrainingRun(v.key, { status: 'failed' })).rejects.toThrow(RegistryConflictError);

    const changed = await t.registry.setDropStatus('found', drop, 'rejected', 'candidate failed review', 'alice');
    expect(changed).toMatchObject({ status: 'rejected', reason: 'candidate failed review' });
    expect((await t.registry.listAudit({ subject: `found/drop/${drop}` })).map((e) => e.action)).toEqual(['drop.record', 'drop.status']);
  });

  it('requires an application version to name a version of a foundation line (its own, or another one for a re-base)', async () => {
    await seedLine(t.registry, 'other');
    const o = await seedVersion(t, 'other');
    await expect(seedVersion(t, 'app', {})).rejects.toThrow(/name the foundation version/);
    await expect(seedVersion(t, 'app', { foundation: { line: 'app', version: 1 } })).rejects.toThrow(/app is an application line; app can only sit on a foundation version/);
    await expect(seedVersion(t, 'app', { foundation: { line: 'other', version: 99 } })).rejects.toThrow(/version other@99/);
    await expect(seedVersion(t, 'found', { foundation: { line: 'other', version: o.version } })).rejects.toThrow(/sits on no foundation version/);
    await expect(seedVersion(t, 'found', { parent: 42 })).rejects.toThrow(/version found@42 does not exist/);
  });

  it('resolves applications by policy: follow moves with the channel, hold stays', async () => {
    const v1 = await seedVersion(t, 'other');
    const v2 = await seedVersion(t, 'other', { parent: v1.version });
    await t.registry.moveChannel({ line: 'other', channel: 'stable', to: v1.version, expectedEpoch: 0, actor: 'ops', reason: 'r', requestKey: 'apps-1' });
    await t.registry.bindApplication({ app: 'follower', line: 'other', channel: 'stable', policy: 'follow', actor: 'ops' });
    await t.registry.bindApplication({ app: 'holder', line: 'other', channel: 'stable', policy: 'hold', actor: 'ops' });
    await t.registry.moveChannel({ line: 'other', channel: 'stable', to: v2.version, expectedEpoch: 1, actor: 'ops', reason: 'r', requestKey: 'apps-2' });
    const apps = await t.registry.listApplications();
    expect(apps.map((a) => [a.app, a.policy, a.pinnedVersion, a.resolvedVersion])).toEqual([
      ['follower', 'follow', null, v2.version],
      ['holder', 'hold', v1.version, v1.version],
    ]);
    await expect(t.registry.bindApplication({ app: 'lost', line: 'other', channel: 'canary', policy: 'hold', actor: 'ops' })).rejects.toThrow(
      /is empty; name the version to hold/,
    );
    // Binding again as it is records nothing; moving to a version that does not exist is a NotFoundError.
    const audited = (await t.registry.listAudit({ subject: 'follower' })).length;
    await t.registry.bindApplication({ app: 'follower', line: 'other', channel: 'stable', policy: 'follow', actor: 'ops' });
    expect(await t.registry.listAudit({ subject: 'follower' })).toHaveLength(audited);
    await expect(
      t.registry.moveChannel({ line: 'other', channel: 'stable', to: 99, expectedEpoch: 2, actor: 'ops', reason: 'r', requestKey: 'apps-99' }),
    ).rejects.toThrow(/version other@99 does not exist/);
    await expect(
      t.registry.moveChannel({ line: 'other', channel: 'beta', to: 1, expectedEpoch: 0, actor: 'ops', reason: 'r', requestKey: 'beta-1' }),
    ).rejects.toThrow(/create it with ensureChannel/);
    await t.registry.ensureChannel({ line: 'other', channel: 'beta', actor: 'ops' });
    expect(
      await t.registry.moveChannel({ line: 'other', channel: 'beta', to: 1, expectedEpoch: 0, actor: 'ops', reason: 'r', requestKey: 'beta-1' }),
    ).toMatchObject({ epoch: 1 });
    expect((await t.registry.verifyAudit()).ok).toBe(true);
  });
});
