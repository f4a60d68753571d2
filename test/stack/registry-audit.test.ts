/** The audit log: append-only for the application role and the owner, hash-chained, with signed roots a superuser cannot forge. */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryBody, MerkleTree, ROOTS_FILE } from '../../activities/registry/audit.ts';
import { canonicalJson, sha256Hex } from '../../activities/registry/canonical.ts';
import { AUDIT_ROOT_PAYLOAD_TYPE, generateKeys, signEnvelope } from '../../activities/registry/signing.ts';
import { openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let admin: postgres.Sql;

beforeEach(async () => {
  t = await openTestRegistry('registry_audit');
  admin = postgres(t.database.adminUrl, { max: 1, onnotice: () => {} });
  await seedLine(t.registry, 'audited');
  const drop = await seedDrop(t.registry, 'audited');
  const v1 = await seedVersion(t, 'audited', { drops: [drop] });
  await t.registry.moveChannel({
    line: 'audited',
    channel: 'stable',
    to: v1.version,
    expectedEpoch: 0,
    actor: 'alice',
    reason: 'first release',
    requestKey: 'r1',
  });
});
afterEach(async () => {
  await admin?.end({ timeout: 5 });
  await t?.close();
});

/** Rewrites entries as a superuser would: triggers off, change, triggers on. */
async function asSuperuser(fn: (sql: postgres.TransactionSql) => Promise<unknown>) {
  await admin.begin(async (tx) => {
    await tx`alter table audit_log disable trigger user`;
    await fn(tx);
    await tx`alter table audit_log enable trigger user`;
  });
}

describe('append-only', () => {
  it('refuses UPDATE, DELETE and TRUNCATE of the audit log and releases by the application role', async () => {
    const app = t.app.sql;
    for (const table of ['audit_log', 'releases']) {
      await expect(app.unsafe(`update ${table} set actor = 'mallory'`)).rejects.toThrow(`permission denied for table ${table}`);
      await expect(app.unsafe(`delete from ${table}`)).rejects.toThrow(`permission denied for table ${table}`);
      await expect(app.unsafe(`truncate ${table}`)).rejects.toThrow(`permission denied for table ${table}`);
    }
    // Nor may it alter the schema or the triggers.
    await expect(app.unsafe('alter table audit_log disable trigger user')).rejects.toThrow(/must be owner/);
    expect((await t.registry.verifyAudit()).ok).toBe(true);
  });

  it('refuses UPDATE, DELETE and TRUNCATE by the owner too (triggers)', async () => {
    await expect(admin`update audit_log set actor = 'mallory' where seq = 1`).rejects.toThrow(/audit_log is append-only: UPDATE refused/);
    await expect(admin`delete from audit_log where seq = 1`).rejects.toThrow(/audit_log is append-only: DELETE refused/);
    await expect(admin`truncate audit_log`).rejects.toThrow(/audit_log is append-only: TRUNCATE refused/);
    await expect(admin`update releases set actor = 'mallory'`).rejects.toThrow(/releases is append-only: UPDATE refused/);
  });
});

describe('hash chain and signed roots', () => {
  it('chains every entry to the one before, in one unbroken sequence', async () => {
    const entries = await t.registry.listAudit({ limit: 1000 });
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    expect(entries.map((e) => e.action)).toEqual(['line.create', 'drop.record', 'training.start', 'training.finish', 'version.create', 'channel.move']);
    for (let i = 1; i < entries.length; i++) expect(entries[i]!.prevHash).toBe(entries[i - 1]!.hash);
    for (const e of entries) expect(e.hash).toBe(sha256Hex(entryBody(e)));
    const result = await t.registry.verifyAudit();
    expect(result).toMatchObject({ ok: true, entries: entries.length, roots: 0, problems: [] });
  });

  it('names the entry a superuser changed (trigger disabled, row edited, trigger re-enabled)', async () => {
    await t.registry.exportAuditRoot();
    const target = (await t.registry.listAudit()).find((e) => e.action === 'channel.move')!;
    await asSuperuser((tx) => tx`update audit_log set details = jsonb_set(details, '{reason}', '"nothing to see"') where seq = ${target.seq}`);

    const result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.firstBad).toMatchObject({ seq: target.seq, kind: 'chain' });
    expect(result.firstBad!.reason).toMatch(new RegExp(`entry ${target.seq} \\(channel.move audited@stable\\) was altered`));
    // A tampered log is never laundered by a fresh signature.
    await expect(t.registry.exportAuditRoot()).rejects.toThrow(/refusing to sign/);
  });

  it('catches a rewrite that recomputes every hash, through the roots signed outside the database', async () => {
    // A root after every entry, so the signed roots pin the rewrite to one entry.
    const count = (await t.registry.listAudit()).length;
    for (let i = 0; i < 3; i++) {
      await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: { i } });
      await t.registry.exportAuditRoot();
    }
    const seq = count + 2;
    await asSuperuser(async (tx) => {
      const rows = await tx<{ seq: string; at: Date; actor: string; action: string; subject: string; details: Record<string, unknown>; prev_hash: string }[]>`
        select seq, at, actor, action, subject, details, prev_hash from audit_log where seq >= ${seq} order by seq`;
      let prevHash = rows[0]!.prev_hash;
      for (const r of rows) {
        const details = Number(r.seq) === seq ? { i: 99 } : r.details;
        const at = new Date(r.at);
        const hash = sha256Hex(entryBody({ seq: Number(r.seq), at, actor: r.actor, action: r.action, subject: r.subject, details, prevHash }));
        await tx`update audit_log set details = ${tx.json(details as never)}, prev_hash = ${prevHash}, hash = ${hash} where seq = ${r.seq}`;
        prevHash = hash;
      }
    });
    const result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.problems.filter((p) => p.kind === 'chain')).toEqual([]);
    expect(result.firstBad).toMatchObject({ seq, kind: 'root' });
    expect(result.firstBad!.reason).toMatch(new RegExp(`rewritten at or after entry ${seq}`));
  });

  it('catches entries deleted from the end', async () => {
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: {} });
    const { root } = await t.registry.exportAuditRoot();
    await asSuperuser((tx) => tx`delete from audit_log where seq >= ${root.treeSize - 1}`);
    const result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.firstBad).toMatchObject({ seq: root.treeSize - 1, kind: 'root' });
    expect(result.firstBad!.reason).toMatch(/were deleted/);
  });

  it('rejects a root signed with another key, and reports an edited roots file', async () => {
    await t.registry.exportAuditRoot();
    const file = join(t.auditDir, ROOTS_FILE);
    const entries = await t.registry.listAudit();
    const tree = new MerkleTree();
    for (const e of entries)
      tree.push(
        canonicalJson({
          seq: e.seq,
          at: e.at.toISOString(),
          actor: e.actor,
          action: e.action,
          subject: e.subject,
          details: e.details,
          prevHash: e.prevHash,
          hash: e.hash,
        }),
      );
    const forged = {
      _type: 'perennial.audit-root/v1',
      treeSize: entries.length,
      rootHash: tree.root(),
      lastHash: entries.at(-1)!.hash,
      exportedAt: new Date().toISOString(),
      keyId: 'x',
    };
    const mallory = generateKeys();
    appendFileSync(file, canonicalJson(signEnvelope(mallory, AUDIT_ROOT_PAYLOAD_TYPE, Buffer.from(canonicalJson(forged)))) + '\n');
    let result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.firstBad).toMatchObject({ seq: null, kind: 'roots-file' });
    expect(result.firstBad!.reason).toMatch(/roots.jsonl line 2: signed by unknown key/);

    // The genuine root still matches; only the forged line is at fault.
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(result.roots).toBe(1);
    // The recomputed Merkle root equals the signed one: the tree is the RFC 6962 tree over the entries.
    const genuine = JSON.parse(Buffer.from((JSON.parse(lines[0]!) as { payload: string }).payload, 'base64').toString()) as {
      rootHash: string;
      treeSize: number;
    };
    expect(genuine.rootHash).toBe(tree.root(genuine.treeSize));
    result = await t.registry.verifyAudit();
    expect(result.problems).toHaveLength(1);
  });

  it('`perennial audit verify` exits 0 when intact and 1 naming the entry when not', { timeout: 120_000 }, async () => {
    const run = () =>
      spawnSync(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'audit', 'verify'], {
        encoding: 'utf8',
        env: { ...process.env, DATABASE_URL: t.database.appUrl, PERENNIAL_DATA_DIR: t.dir, TEMPORAL_ADDRESS: '127.0.0.1:1' },
        timeout: 60_000,
      });
    const ok = run();
    expect(ok.stdout + ok.stderr).toMatch(/audit log intact/);
    expect(ok.status).toBe(0);
    await asSuperuser((tx) => tx`update audit_log set actor = 'mallory' where seq = 3`);
    const bad = run();
    expect(bad.stdout).toMatch(/audit log BROKEN at entry 3: entry 3 \(training.start/);
    expect(bad.status).toBe(1);
  });
});

afterAll(() => {});
