/**
 * `npx tsx scripts/bench-seal.ts`: what signing an audit root costs with a large log. A full export (verify
 * the whole chain, then sign: what every seal cost before the Merkle frontier was kept) against a seal from
 * the last root's frontier after a cycle's worth of new entries. Starts its own embedded PostgreSQL under
 * .scratch/ and bulk-loads the log with COPY as the owner (the entries hashed exactly as the database would).
 *
 * Options (env): BENCH_ENTRIES (100000), BENCH_TAIL (20 entries per seal), BENCH_ROUNDS (5).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { ArtifactStore } from '../registry/artifacts.ts';
import { entryBody } from '../registry/audit.ts';
import { sha256Hex } from '../registry/canonical.ts';
import { appDatabaseUrl, connectDatabase, migrateDatabase } from '../registry/db.ts';
import { Registry } from '../registry/registry.ts';
import { loadOrCreateKeys } from '../registry/signing.ts';
import { AUDIT_GENESIS_HASH } from '../schemas/db/index.ts';
import { startPostgres } from './stack/postgres.ts';
import { freePort } from './stack/wait.ts';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 100_000);
const TAIL = Number(process.env.BENCH_TAIL ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const scratch = resolve('.scratch', `bench-seal-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const pg = await startPostgres({ root: join(scratch, 'postgres'), port: await freePort() });
  try {
    const role = { name: 'bench_app', password: randomBytes(12).toString('hex') };
    await migrateDatabase(pg.adminUrl, { appRole: role });
    const admin = postgres(pg.adminUrl, { max: 1, onnotice: () => {} });
    const lines: string[] = [];
    let prevHash = AUDIT_GENESIS_HASH;
    const at0 = Date.parse('2026-01-01T00:00:00.000Z');
    for (let seq = 1; seq <= ENTRIES; seq++) {
      const e = { seq, at: new Date(at0 + seq * 1000), actor: 'bench', action: 'version.create', subject: `bench@${seq}`, details: { seq }, prevHash };
      const hash = sha256Hex(entryBody(e));
      lines.push([seq, e.at.toISOString(), e.actor, e.action, e.subject, JSON.stringify(e.details), prevHash, hash].join('\t') + '\n');
      prevHash = hash;
    }
    const copy = await admin`copy audit_log (seq, at, actor, action, subject, details, prev_hash, hash) from stdin`.writable();
    await pipeline(Readable.from(lines), copy);
    await admin`vacuum analyze audit_log`;

    const app = connectDatabase(appDatabaseUrl(pg.adminUrl, role));
    const registry = new Registry({
      db: app.db,
      sql: app.sql,
      store: new ArtifactStore(join(scratch, 'artifacts')),
      keys: loadOrCreateKeys(join(scratch, 'keys')),
      auditDir: join(scratch, 'audit'),
    });
    const full: number[] = [];
    const seal: number[] = [];
    let size = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < TAIL; i++) await registry.appendAudit({ actor: 'bench', action: 'note.add', subject: 'bench', details: { round, i } });
      let t0 = performance.now();
      await registry.exportAuditRoot();
      full.push(performance.now() - t0);
      for (let i = 0; i < TAIL; i++) await registry.appendAudit({ actor: 'bench', action: 'note.add', subject: 'bench', details: { round, i } });
      t0 = performance.now();
      const sealed = await registry.sealAuditLog();
      seal.push(performance.now() - t0);
      if (sealed.hashed !== TAIL) throw new Error(`the seal hashed ${sealed.hashed} entries, expected ${TAIL}`);
      size = sealed.root.treeSize;
    }
    const verified = await registry.verifyAudit();
    if (!verified.ok) throw new Error(`the log does not verify: ${verified.firstBad?.reason}`);
    console.log(
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}; log of ${size} entries, ${ROUNDS} rounds`,
    );
    console.log(`full export (verify everything, sign):       median ${median(full).toFixed(0)} ms  (${full.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`seal from the frontier (+${TAIL} entries, sign): median ${median(seal).toFixed(1)} ms  (${seal.map((x) => x.toFixed(1)).join(', ')})`);
    await app.close();
    await admin.end();
  } finally {
    await pg.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
