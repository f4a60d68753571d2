/** The audit log: append-only for the application role and the owner, hash-chained, with signed roots a superuser cannot forge. */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryBody, entryLeaf, MerkleTree, ROOTS_FILE } from '../../registry/audit.ts';
import { canonicalJson, sha256Hex } from '../../registry/canonical.ts';
import { AUDIT_ROOT_PAYLOAD_TYPE, generateKeys, signEnvelope } from '../../registry/signing.ts';
import { createActivities } from '../../activities/index.ts';
import { registry as registryPreset } from '../../workflows/options.ts';
import { activityDeps, openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

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

describe('the append path', () => {
  it('refuses a correctly hashed entry the application role forges', async () => {
    const app = t.app.sql;
    const [head] = await app<{ seq: string; hash: string }[]>`select seq::text, hash from audit_log order by seq desc limit 1`;
    const forged = {
      seq: Number(head!.seq) + 1,
      at: new Date('2020-01-01T00:00:00.000Z'),
      actor: 'alice',
      action: 'channel.move',
      subject: 'audited@stable',
      details: { reason: 'backdated approval' },
      prevHash: head!.hash,
    };
    const hash = sha256Hex(entryBody(forged));
    // Before migration 0003 this insert succeeded, verified, and was signed at the next seal.
    await expect(
      app`insert into audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
          values (${forged.seq}, ${forged.at.toISOString()}, ${forged.actor}, ${forged.action}, ${forged.subject}, ${JSON.stringify(forged.details)}::jsonb, ${forged.prevHash}, ${hash})`,
    ).rejects.toThrow('permission denied for table audit_log');
    // The one way in stamps its own time, number and hash: the caller chooses none of them.
    const [row] = await app<{ seq: string; at: string; prev_hash: string; hash: string }[]>`
      select seq::text, at, prev_hash, hash from perennial_audit_append('alice', 'note.add', 'audited', ${JSON.stringify({ a: 1 })}::jsonb)`;
    expect(Number(row!.seq)).toBe(forged.seq);
    expect(row!.prev_hash).toBe(head!.hash);
    expect(Date.now() - new Date(row!.at).getTime()).toBeLessThan(60_000);
    const result = await t.registry.verifyAudit();
    expect(result).toMatchObject({ ok: true, entries: forged.seq });
    expect((await t.registry.listAudit({ limit: 1000 })).some((e) => e.details.reason === 'backdated approval')).toBe(false);
  });

  it('hashes in the database exactly as canonical.ts does, whatever the details', async () => {
    const details = {
      z: [1, -0, 0.1, 1e21, 1e-7, 123456789012345680000, 1.5e-6, 2 ** 53, -3.25e100, 1e-300],
      é: { nested: [true, false, null, [], {}], A: 'quote " backslash \\ tab \t nl \n ctl \u0001 \u001f del \u007f' },
      '😀': 'astral 😀 and bmp \u2028',
      '': 'empty key',
      b10: 10,
      b9: 9,
    };
    const entry = await t.registry.appendAudit({ actor: 'ops', action: 'note.add', subject: 'audited', details });
    expect(entry.hash).toBe(sha256Hex(entryBody(entry)));
    const stored = (await t.registry.listAudit({ after: entry.seq - 1, limit: 1 }))[0]!;
    expect(stored.hash).toBe(sha256Hex(entryBody(stored)));
    expect((await t.registry.verifyAudit()).ok).toBe(true);
  });
});

describe('recorded events', () => {
  it('records an event once per event key, also when attempts race, and refuses the key for another event', async () => {
    const before = (await t.registry.listAudit()).length;
    const event = {
      actor: 'rev',
      action: 'release.approved',
      line: 'audited',
      version: 1,
      payload: { reason: 'looks good' },
      eventKey: 'cycle:audited:1/abc:approved',
    };
    // A local activity that committed and ran again on replay, and attempts at once.
    const first = await t.registry.recordEvent(event);
    const again = await Promise.all(Array.from({ length: 5 }, () => t.registry.recordEvent(event)));
    expect(again.map((e) => e.seq)).toEqual(Array(5).fill(first.seq));
    expect(first.details).toEqual({ reason: 'looks good', eventKey: event.eventKey });
    const entries = await t.registry.listAudit();
    expect(entries.length).toBe(before + 1);
    expect(entries.filter((e) => e.action === 'release.approved')).toHaveLength(1);
    await expect(t.registry.recordEvent({ ...event, action: 'regression.reported' })).rejects.toThrow(
      /event key cycle:audited:1\/abc:approved was already used for release.approved audited@1/,
    );
    // Without a key every call is an entry of its own, as before.
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: {} });
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: {} });
    expect((await t.registry.listAudit()).length).toBe(before + 3);
    expect((await t.registry.verifyAudit()).ok).toBe(true);
  });
});

describe('signed roots recorded in the database', () => {
  it('fails verification when roots.jsonl is deleted or truncated', async () => {
    await t.registry.exportAuditRoot();
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: {} });
    await t.registry.exportAuditRoot();
    const file = join(t.auditDir, ROOTS_FILE);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(await t.registry.verifyAudit()).toMatchObject({ ok: true, roots: 2 });

    writeFileSync(file, lines[0] + '\n');
    let result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.firstBad).toMatchObject({ kind: 'roots-file' });
    expect(result.firstBad!.reason).toMatch(/the database records 2 signed roots but roots.jsonl holds 1/);

    rmSync(file);
    result = await t.registry.verifyAudit();
    expect(result.ok).toBe(false);
    expect(result.firstBad!.reason).toMatch(/the database records 2 signed roots but roots.jsonl is missing/);
    // Nor does a seal sign on top of a file that lost its roots.
    await expect(t.registry.sealAuditLog()).rejects.toThrow(/refusing to sign/);
  });
});

describe('sealing from the Merkle frontier', () => {
  it('hashes only the entries since the last root and signs the same root a full scan computes', async () => {
    const first = await t.registry.exportAuditRoot();
    for (let i = 0; i < 5; i++) await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: { i } });
    const sealed = await t.registry.sealAuditLog();
    expect(sealed.hashed).toBe(5);
    expect(sealed.root.treeSize).toBe(first.root.treeSize + 5);
    const tree = new MerkleTree();
    for (const e of await t.registry.listAudit({ limit: 1000 })) tree.push(entryLeaf(e));
    expect(sealed.root.rootHash).toBe(tree.root());
    // A seal with nothing new hashes nothing.
    expect((await t.registry.sealAuditLog()).hashed).toBe(0);
    expect(await t.registry.verifyAudit()).toMatchObject({ ok: true, roots: 3 });
  });

  it('refuses to seal over a tail entry a superuser changed, or a frontier no signed root vouches for', async () => {
    await t.registry.exportAuditRoot();
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: { i: 1 } });
    const last = (await t.registry.listAudit({ limit: 1000 })).at(-1)!;
    await asSuperuser((tx) => tx`update audit_log set actor = 'mallory' where seq = ${last.seq}`);
    await expect(t.registry.sealAuditLog()).rejects.toThrow(new RegExp(`refusing to sign the audit root: entry ${last.seq} .* was altered`));
    await asSuperuser((tx) => tx`update audit_log set actor = 'ops' where seq = ${last.seq}`);

    // The owner (the application role may not: security-rights.test.ts) records a root the way rows looked before
    // envelopes were kept: a frontier that no signed root matches is not built on.
    const [row] = await admin<{ seq: string; tree_size: string; root_hash: string; last_hash: string; key_id: string }[]>`
      select seq::text, tree_size::text, root_hash, last_hash, key_id from audit_roots order by seq desc limit 1`;
    await admin`insert into audit_roots (seq, tree_size, root_hash, last_hash, frontier, key_id, signed_at)
      values (${Number(row!.seq) + 1}, ${row!.tree_size}, ${'ab'.repeat(32)}, ${row!.last_hash}, ${JSON.stringify(['ab'.repeat(32)])}::text::jsonb, ${row!.key_id}, now())`;
    await expect(t.registry.sealAuditLog()).rejects.toThrow(/refusing to sign the audit root: .*not in roots.jsonl/);
  });

  it("fails the loop's seal activity without retries when the log is broken: no retry signs a root over it", async () => {
    await t.registry.exportAuditRoot();
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'audited', payload: { i: 2 } });
    const last = (await t.registry.listAudit({ limit: 1000 })).at(-1)!;
    await asSuperuser((tx) => tx`update audit_log set actor = 'mallory' where seq = ${last.seq}`);
    const failure = await createActivities(activityDeps(t))
      .sealAuditLog()
      .then(() => null, (err: Error) => err);
    // Temporal takes an activity error's name as its failure type; the preset lists the types it never retries.
    expect(failure?.name).toBe('AuditLogBrokenError');
    expect(failure?.message).toMatch(new RegExp(`refusing to sign the audit root: entry ${last.seq} .* was altered`));
    expect(registryPreset.retry?.nonRetryableErrorTypes).toContain(failure?.name);
    await asSuperuser((tx) => tx`update audit_log set actor = 'ops' where seq = ${last.seq}`);
  });
});

afterAll(() => {});
