/**
 * `npm run bench:registry`: p50/p99 of version allocation, channel move and lineage lookup with 100,000
 * versions in the registry (goal: p99 < 10 ms each). Starts its own embedded PostgreSQL under .scratch/
 * unless DATABASE_URL (or DATABASE_ADMIN_URL) is set, in which case it creates and drops a scratch database
 * on that server. Bulk-loads with generate_series and multi-row inserts, then times the real Registry calls
 * made as the application role.
 *
 * Options (env): BENCH_VERSIONS (100000), BENCH_LINES (10), BENCH_ITERATIONS (300), BENCH_KEEP=1 keeps the data.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
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
import { startPostgres, type PostgresHandle } from './stack/postgres.ts';
import { freePort } from './stack/wait.ts';

const VERSIONS = Number(process.env.BENCH_VERSIONS ?? 100_000);
const LINES = Number(process.env.BENCH_LINES ?? 10);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 300);
const WARMUP = 20;
const GOAL_MS = 10;
const PER_LINE = Math.ceil(VERSIONS / LINES);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function time(label: string, n: number, fn: (i: number) => Promise<unknown>): Promise<{ label: string; samples: number[] }> {
  for (let i = 0; i < WARMUP; i++) await fn(-1 - i);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    samples.push(performance.now() - t0);
  }
  return { label, samples };
}

function report({ label, samples }: { label: string; samples: number[] }): string {
  const s = [...samples].sort((a, b) => a - b);
  const p99 = percentile(s, 99);
  const f = (x: number) => x.toFixed(2).padStart(7);
  return `${label.padEnd(52)} n=${String(s.length).padEnd(5)} p50 ${f(percentile(s, 50))} ms   p99 ${f(p99)} ms   max ${f(s.at(-1)!)} ms   ${p99 < GOAL_MS ? 'ok' : `OVER the ${GOAL_MS} ms goal`}`;
}

async function main() {
  const started = performance.now();
  const scratch = resolve('.scratch', `bench-registry-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  let pg: PostgresHandle | undefined;
  let serverUrl = process.env.DATABASE_ADMIN_URL ?? process.env.DATABASE_URL;
  if (!serverUrl) {
    pg = await startPostgres({ root: join(scratch, 'postgres'), port: await freePort() });
    serverUrl = pg.adminUrl;
    console.log(`embedded PostgreSQL on port ${pg.port} (${scratch})`);
  }
  const dbName = `perennial_bench_${process.pid}`;
  const server = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await server.unsafe(`CREATE DATABASE "${dbName}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const adminUrl = url.toString();
  const role = { name: `${dbName}_app`, password: randomBytes(18).toString('base64url') };

  try {
    await migrateDatabase(adminUrl, { appRole: role });
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    const t0 = performance.now();
    const steps: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      const s0 = performance.now();
      await fn();
      steps.push(`${what} ${((performance.now() - s0) / 1000).toFixed(1)} s`);
    };
    // ---- bulk load: lines, versions in parent chains, one drop per version, release history, audit chain ----
    await step('rows', () =>
      admin.begin(async (tx) => {
        // Generated rows are consistent by construction: skip the per-row foreign-key triggers while loading.
        await tx`set local session_replication_role = replica`;
        await tx`insert into lines (name, kind, model_config, default_recipe, gate_rules, next_version)
               select 'bench-' || i, 'foundation', '{}', '{}', '{}', ${PER_LINE + 1} from generate_series(1, ${LINES}) i`;
        await tx`insert into channels (line_id, name) select id, c from lines, unnest(array['candidate', 'canary', 'stable']) c`;
        await tx`insert into data_drops (line_id, digest, source, status, records, train_records, held_out_records, stored_path)
               select l.id, encode(sha256(convert_to('drop:' || l.id || ':' || n, 'UTF8')), 'hex'), 'bench', 'accepted', 100, 85, 15, '/bench'
               from lines l, generate_series(1, ${PER_LINE}) n`;
        await tx`insert into versions (line_id, number, parent_number, artifact_digest, manifest_digest, manifest_key_id, recipe, code_revision, seed, backend, compute_tokens, compute_flops, compute_wall_ms)
               select l.id, n, nullif(n - 1, 0),
                      encode(sha256(convert_to('w:' || l.id || ':' || n, 'UTF8')), 'hex'),
                      encode(sha256(convert_to('m:' || l.id || ':' || n, 'UTF8')), 'hex'),
                      repeat('0', 64), '{"steps": 60}', 'bench', n, 'cpu', 100000, 1e12, 1000
               from lines l, generate_series(1, ${PER_LINE}) n`;
        await tx`insert into version_drops (version_id, drop_id)
               select v.id, d.id from versions v join data_drops d
                 on d.line_id = v.line_id and d.digest = encode(sha256(convert_to('drop:' || v.line_id || ':' || v.number, 'UTF8')), 'hex')`;
        // Every 10th version went out on stable; the channel holds the last.
        await tx`insert into releases (line_id, channel_id, from_number, to_number, epoch, actor, reason, request_key)
               select c.line_id, c.id, nullif(n - 10, 0), n, n / 10, 'bench', 'bulk history', 'bench:' || c.id || ':' || n
               from channels c, generate_series(10, ${PER_LINE}, 10) n where c.name = 'stable'`;
        await tx`update channels c set version_number = r.to_number, epoch = r.epoch
               from (select distinct on (channel_id) channel_id, to_number, epoch from releases order by channel_id, epoch desc) r where r.channel_id = c.id`;
      }),
    );
    // A valid audit chain of one entry per version, so appends and verification run against a full log.
    let prevHash = AUDIT_GENESIS_HASH;
    const at0 = Date.now() - VERSIONS * 1000;
    await step('audit chain', async () => {
      const lines: string[] = [];
      for (let seq = 1; seq <= VERSIONS; seq++) {
        const e = {
          seq,
          at: new Date(at0 + seq * 1000),
          actor: 'bench',
          action: 'version.create',
          subject: `bench-${((seq - 1) % LINES) + 1}@${Math.ceil(seq / LINES)}`,
          details: { seq },
          prevHash,
        };
        const hash = sha256Hex(entryBody(e));
        // COPY text format: the values hold no tabs, newlines or backslashes.
        lines.push([seq, e.at.toISOString(), e.actor, e.action, e.subject, JSON.stringify(e.details), prevHash, hash].join('\t') + '\n');
        prevHash = hash;
      }
      const copy = await admin`copy audit_log (seq, at, actor, action, subject, details, prev_hash, hash) from stdin`.writable();
      await pipeline(Readable.from(lines), copy);
    });
    // Settle the load (vacuum, statistics, a checkpoint) so background work does not land in the timings.
    await step('vacuum+checkpoint', async () => {
      await admin`vacuum analyze`;
      await admin`checkpoint`;
    });
    const [{ n }] = (await admin`select count(*)::int as n from versions`) as unknown as [{ n: number }];
    console.log(
      `loaded ${n} versions on ${LINES} lines, ${VERSIONS} drops, ${LINES * Math.floor(PER_LINE / 10)} releases, ${VERSIONS} audit entries in ${((performance.now() - t0) / 1000).toFixed(1)} s (${steps.join(', ')})`,
    );

    // ---- the real registry, as the application role ----
    const app = connectDatabase(appDatabaseUrl(adminUrl, role));
    const store = new ArtifactStore(join(scratch, 'artifacts'));
    const keys = loadOrCreateKeys(join(scratch, 'keys'));
    const registry = new Registry({ db: app.db, sql: app.sql, store, keys, auditDir: join(scratch, 'audit') });
    const weights = await store.put(randomBytes(64 * 1024));
    const results = [];

    // Version allocation: the whole createVersion (number, signed manifest written with fsync, rows, audit entry).
    const runKeys: string[] = [];
    for (let i = 0; i < ITERATIONS + WARMUP; i++) {
      const key = `bench-run-${i}`;
      runKeys.push(key);
      await registry.startTrainingRun({ line: 'bench-1', key, parentVersion: PER_LINE, recipe: { steps: 60 }, seed: i, drops: [] });
    }
    let next = 0;
    results.push(
      await time('version allocation (createVersion, 100k)', ITERATIONS, () =>
        registry.createVersion({
          line: 'bench-1',
          trainingRunKey: runKeys[next++]!,
          parentVersion: PER_LINE,
          weightsDigest: weights,
          recipe: { steps: 60 },
          drops: [],
          codeRevision: 'bench',
          seed: 1,
          backend: 'cpu',
          compute: { tokens: 1, flops: 1, wallMs: 1 },
        }),
      ),
    );

    // The allocation mechanism alone: the counter row's UPDATE ... RETURNING and the insert, in one transaction.
    const fake = sha256Hex('bench');
    results.push(
      await time('  of which: number allocation (UPDATE..RETURNING + insert)', ITERATIONS, () =>
        app.sql.begin(async (tx) => {
          const [row] = await tx<{ n: number }[]>`update lines set next_version = next_version + 1 where name = 'bench-3' returning next_version - 1 as n`;
          await tx`insert into versions (line_id, number, artifact_digest, manifest_digest, manifest_key_id, recipe, code_revision, seed, backend)
                   select id, ${row!.n}, ${fake}, ${fake}, ${fake}, '{}', 'bench', 0, 'cpu' from lines where name = 'bench-3'`;
        }),
      ),
    );

    // Channel move: compare-and-swap, release record and audit entry in one transaction.
    let epoch = (await registry.getChannels('bench-2')).find((c) => c.channel === 'canary')!.epoch;
    let moves = 0;
    results.push(
      await time('channel move (moveChannel, CAS + release + audit)', ITERATIONS, async () => {
        const to = 1 + Math.floor(Math.random() * PER_LINE);
        const r = await registry.moveChannel({
          line: 'bench-2',
          channel: 'canary',
          to,
          expectedEpoch: epoch,
          actor: 'bench',
          reason: 'bench',
          requestKey: `bench-move-${moves++}`,
        });
        epoch = r.epoch;
      }),
    );

    // Lineage lookup of a random version deep in a 10,000-long parent chain (64 parents followed).
    results.push(
      await time('lineage lookup (lineage, 64 parents + drops)', ITERATIONS, () => {
        const line = `bench-${1 + Math.floor(Math.random() * LINES)}`;
        return registry.lineage(line, 100 + Math.floor(Math.random() * (PER_LINE - 100)));
      }),
    );

    // Latencies on a shared machine depend on what else runs: say so next to the numbers.
    console.log(
      `\n${cpus().length} CPUs, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (1/5/15 min)`,
    );
    for (const r of results) console.log(report(r));

    // Whole-log operations, for scale (not per-call latencies).
    const v0 = performance.now();
    const verified = await registry.verifyAudit();
    const verifyMs = performance.now() - v0;
    const e0 = performance.now();
    const exported = await registry.exportAuditRoot();
    const exportMs = performance.now() - e0;
    console.log(
      `\naudit verify over ${verified.entries} entries: ${verified.ok ? 'intact' : 'BROKEN'} in ${verifyMs.toFixed(0)} ms; signed root export in ${exportMs.toFixed(0)} ms (root ${exported.root.rootHash.slice(0, 16)}…)`,
    );
    await app.close();
    await admin.end();
  } finally {
    await server.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    await server.unsafe(`DROP ROLE IF EXISTS "${role.name}"`).catch(() => {});
    await server.end();
    await pg?.stop();
    if (!process.env.BENCH_KEEP) rmSync(scratch, { recursive: true, force: true });
  }
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

await main();
