/**
 * A seal whose write is cut short (a full disk, here a file-size limit) fails loudly: `perennial audit seal`
 * exits non-zero, the database records no root for it, `audit verify` and `perennial status` say why, and the
 * next seal repairs the torn line and anchors the log again.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ROOTS_FILE, ROOTS_REPAIR_ACTION, SEAL_FAILED_ACTION } from '../../registry/audit.ts';
import { BIN } from '../helpers/bin.ts';
import { openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
const line = `seal-${Date.now().toString(36)}`;

beforeEach(async () => {
  t = await openTestRegistry('audit_seal');
  await seedLine(t.registry, line);
  await seedVersion(t, line, { drops: [await seedDrop(t.registry, line)] });
});
afterEach(async () => t?.close());

/** `perennial <args>` as a shell runs it, under `ulimit -f <blocks>` (1 KiB each) when given. */
function perennial(args: string[], opts: { fileLimitKiB?: number } = {}) {
  const limit = opts.fileLimitKiB === undefined ? '' : `ulimit -f ${opts.fileLimitKiB}; `;
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${limit}exec ${quoted}`], {
    encoding: 'utf8',
    env: {
      ...process.env,
      DATABASE_URL: t.database.appUrl,
      PERENNIAL_DATA_DIR: t.dir,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: inject('temporalNamespace'),
      PERENNIAL_TASK_QUEUE: `audit-seal-${line}`,
    },
    timeout: 90_000,
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

async function rootRows(): Promise<number> {
  const [row] = await t.app.sql<{ n: number }[]>`select count(*)::int as n from audit_roots`;
  return row!.n;
}

const MiB = 1024 * 1024;

describe('a seal whose write is cut short', () => {
  it('exits non-zero, records no root, is shown by verify and status, and the next seal repairs the torn line', { timeout: 240_000 }, async () => {
    await t.registry.exportAuditRoot();
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line, payload: { n: 1 } });
    // Blank lines are no roots (readers skip them): pad the file to 100 bytes under 1 MiB, so the next root,
    // several hundred bytes long, crosses the limit and write(2) writes only its first 100 bytes.
    const file = join(t.auditDir, ROOTS_FILE);
    appendFileSync(file, '\n'.repeat(MiB - 100 - statSync(file).size));
    expect((await t.registry.verifyAudit()).ok).toBe(true);
    const before = await rootRows();

    const cut = perennial(['audit', 'seal'], { fileLimitKiB: 1024 });
    expect(cut.out).toMatch(/seal failed: could not write the signed root to .*roots\.jsonl: 100 of \d+ bytes written \(EFBIG\)/);
    expect(cut.code).toBe(1);
    expect(statSync(file).size).toBe(MiB);
    expect(readFileSync(file).at(-1)).not.toBe(0x0a); // the torn line is there
    expect(await rootRows()).toBe(before); // and the database did not record the root it was cut from
    const failed = (await t.registry.listAudit({ limit: 1000 })).filter((e) => e.action === SEAL_FAILED_ACTION);
    expect(failed).toHaveLength(1);

    // With the torn line left in place: verify exits 1 and says why; status shows the failed seal.
    const verify = perennial(['audit', 'verify']);
    expect(verify.code).toBe(1);
    expect(verify.out).toMatch(/roots\.jsonl ends in a torn line \(line 2, 100 bytes and no newline\): a seal's write was cut short/);
    expect(verify.out).toMatch(/the last seal failed \(audit entry \d+, .*\): could not write the signed root/);
    const status = perennial(['status']);
    expect(status.out).toMatch(/audit log NOT SEALED since .* \(audit entry \d+\): could not write the signed root .*EFBIG/);
    expect(status.code).toBe(0);

    // The limit lifted, the next seal cuts the torn line off (keeping its bytes in an audit entry) and signs.
    const sealed = perennial(['audit', 'seal']);
    expect(sealed.out).toMatch(/repaired roots\.jsonl: its last line was torn at byte \d+ of 1048576 and was cut off \(audit entry \d+ keeps the torn bytes\)/);
    expect(sealed.code).toBe(0);
    expect(await rootRows()).toBe(before + 1);
    const repair = (await t.registry.listAudit({ limit: 1000 })).find((e) => e.action === ROOTS_REPAIR_ACTION)!;
    expect(repair.details).toMatchObject({ action: 'truncated', size: MiB, offset: MiB - 100, bytes: 100 });
    expect(Buffer.from(repair.details.torn as string, 'base64').toString()).toMatch(/^\{"payload":"/);
    expect(readFileSync(file).at(-1)).toBe(0x0a);

    const ok = perennial(['audit', 'verify']);
    expect(ok.out).toMatch(/audit log intact: \d+ entries, chain unbroken, 2 signed root\(s\) match/);
    expect(ok.code).toBe(0);
    const clear = perennial(['status']);
    expect(clear.out).not.toMatch(/NOT SEALED/);
  });

  it('a seal cut before its first byte still fails, and verify names the failed seal until one succeeds', { timeout: 120_000 }, async () => {
    await t.registry.exportAuditRoot();
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line, payload: { n: 2 } });
    const file = join(t.auditDir, ROOTS_FILE);
    appendFileSync(file, '\n'.repeat(MiB - statSync(file).size)); // exactly at the limit: not one byte more fits
    const cut = perennial(['audit', 'seal'], { fileLimitKiB: 1024 });
    expect(cut.code).toBe(1);
    expect(cut.out).toMatch(/0 of \d+ bytes written \(EFBIG\)/);
    const verify = perennial(['audit', 'verify']);
    expect(verify.out).toMatch(/audit log NOT SEALED: the last seal failed \(audit entry \d+, .*\): could not write the signed root/);
    expect(verify.code).toBe(1);
    expect(perennial(['audit', 'seal']).code).toBe(0);
    expect(perennial(['audit', 'verify']).code).toBe(0);
  });
});
