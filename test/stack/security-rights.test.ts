/**
 * The application role's rights, table by table, against an explicit list: a new table without a decision fails
 * here. Signed roots go in only through perennial_audit_record_root, and a finished training run stays as written.
 */
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_GENESIS_HASH } from '../../schemas/db/index.ts';
import { canonicalJson } from '../../registry/canonical.ts';
import { AUDIT_ROOT_PAYLOAD_TYPE, generateKeys, signEnvelope } from '../../registry/signing.ts';
import { openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

/** What the application role may do on each table of the public schema; UPDATE lists its columns when narrowed. */
const EXPECTED: Record<string, { privileges: string[]; update?: string[] }> = {
  applications: { privileges: ['SELECT', 'INSERT'], update: ['channel', 'line_id', 'pinned_number', 'policy', 'updated_at'] },
  audit_log: { privileges: ['SELECT'] },
  audit_roots: { privileges: ['SELECT'] },
  channels: { privileges: ['SELECT', 'INSERT'], update: ['epoch', 'updated_at', 'version_number'] },
  data_drops: { privileges: ['SELECT', 'INSERT'], update: ['accepted_seq', 'ingest_key', 'reason', 'status'] },
  evaluation_suites: { privileges: ['SELECT', 'INSERT'] },
  evaluations: { privileges: ['SELECT', 'INSERT'], update: ['backend', 'code_revision', 'data_digest', 'evaluated_at', 'metrics', 'weights_digest'] },
  gate_decisions: { privileges: ['SELECT', 'INSERT'], update: ['overridden_at', 'override_actor', 'override_reason'] },
  lines: { privileges: ['SELECT', 'INSERT', 'UPDATE'] },
  plasticity_records: { privileges: ['SELECT', 'INSERT'] },
  recipe_trials: { privileges: ['SELECT', 'INSERT'] },
  releases: { privileges: ['SELECT', 'INSERT'] },
  rl_runs: { privileges: ['SELECT', 'INSERT'] },
  training_run_drops: { privileges: ['SELECT', 'INSERT'] },
  training_runs: {
    privileges: ['SELECT', 'INSERT'],
    update: ['artifact_digest', 'backend', 'checkpoints', 'error', 'final_loss', 'finished_at', 'flops', 'status', 'steps', 'tokens', 'version_id', 'wall_ms'],
  },
  version_drops: { privileges: ['SELECT', 'INSERT'] },
  version_files: { privileges: ['SELECT', 'INSERT'] },
  versions: { privileges: ['SELECT', 'INSERT'] },
};

let t: TestRegistry;
let admin: postgres.Sql;

beforeEach(async () => {
  t = await openTestRegistry('security_rights');
  admin = postgres(t.database.adminUrl, { max: 1, onnotice: () => {} });
  await seedLine(t.registry, 'rights');
});
afterEach(async () => {
  await admin?.end({ timeout: 5 });
  await t?.close();
});

const denied = /permission denied/;

describe('the application role', () => {
  it('has exactly the listed rights on every table of the public schema', async () => {
    const app = t.app.sql;
    const rows = await app<{ table: string; privilege: string; held: boolean }[]>`
      select c.relname as table, p.privilege, has_table_privilege(current_user, c.oid, p.privilege) as held
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as p(privilege)
      where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`;
    const columns = await app<{ table: string; column: string }[]>`
      select table_name as table, column_name as column from information_schema.column_privileges
      where grantee = current_user and table_schema = 'public' and privilege_type = 'UPDATE' order by 1, 2`;
    const actual: Record<string, { privileges: string[]; update?: string[] }> = {};
    const order = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'];
    for (const r of rows) actual[r.table] ??= { privileges: [] };
    for (const r of rows) if (r.held) actual[r.table]!.privileges.push(r.privilege);
    for (const rights of Object.values(actual)) rights.privileges.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    for (const [table, rights] of Object.entries(actual)) {
      if (rights.privileges.includes('UPDATE')) continue; // the whole row: no column list
      const cols = columns
        .filter((c) => c.table === table)
        .map((c) => c.column)
        .sort();
      if (cols.length) rights.update = cols;
    }
    expect(actual).toEqual(EXPECTED);
  });

  it('cannot insert into audit_roots; seals go in through perennial_audit_record_root, which takes only roots true of the log', async () => {
    const app = t.app.sql;
    await seedVersion(t, 'rights', { drops: [await seedDrop(t.registry, 'rights')] });
    const first = await t.registry.sealAuditLog(); // through the definer function, as the application role
    const [row] = await app<{ seq: string; tree_size: string; root_hash: string; last_hash: string; key_id: string; frontier: string[] }[]>`
      select seq::text, tree_size::text, root_hash, last_hash, key_id, frontier from audit_roots order by seq desc limit 1`;
    expect(row).toMatchObject({ seq: '1', tree_size: String(first.root.treeSize), root_hash: first.root.rootHash });
    await expect(
      app`insert into audit_roots (seq, tree_size, root_hash, last_hash, frontier, key_id, signed_at)
        values (2, ${row!.tree_size}, ${'ab'.repeat(32)}, ${row!.last_hash}, ${JSON.stringify(['ab'.repeat(32)])}::jsonb, ${row!.key_id}, now())`,
    ).rejects.toThrow(denied);

    // The function refuses what is not true of the log: a frontier that does not hash to the root, a last hash
    // that is not the entry's, a size the log does not have, a payload that is no audit root.
    const mallory = generateKeys();
    const envelope = (root: Record<string, unknown>, keyId = t.keys.keyId) =>
      canonicalJson(
        signEnvelope({ ...mallory, keyId }, AUDIT_ROOT_PAYLOAD_TYPE, Buffer.from(canonicalJson({ _type: 'perennial.audit-root/v1', exportedAt: new Date().toISOString(), keyId, ...root }))),
      );
    const size = Number(row!.tree_size);
    const record = (env: string, frontier: unknown) => app`select perennial_audit_record_root(${env}::text::jsonb, ${JSON.stringify(frontier)}::text::jsonb)`;
    const truth = { treeSize: size, rootHash: row!.root_hash, lastHash: row!.last_hash };
    await expect(record(envelope({ ...truth, rootHash: 'ab'.repeat(32) }), row!.frontier)).rejects.toThrow(/its frontier does not hash to it/);
    await expect(record(envelope({ ...truth, lastHash: 'ab'.repeat(32) }), row!.frontier)).rejects.toThrow(/entry \d+ is not the one it names/);
    await expect(record(envelope({ ...truth, treeSize: size + 5 }), row!.frontier)).rejects.toThrow(/entry \d+ is missing/);
    await expect(record(envelope({ ...truth, treeSize: 0, lastHash: AUDIT_GENESIS_HASH }), [])).rejects.toThrow(/the last root already covers/);
    await expect(record(envelope({ treeSize: 'x' }), [])).rejects.toThrow(/not an audit root|malformed payload/);
    await expect(record(JSON.stringify({ payloadType: 'text/plain', payload: '', signatures: [] }), [])).rejects.toThrow(/not a signed audit-root envelope/);

    // A true root signed by a key nobody trusts goes in (the database cannot check signatures), but it is no
    // root: the next seal builds on the last signed one and verification passes it over.
    await record(envelope(truth), row!.frontier);
    await t.registry.recordEvent({ actor: 'ops', action: 'note.add', line: 'rights', payload: { n: 1 } });
    const next = await t.registry.sealAuditLog();
    expect(next.hashed).toBe(1);
    const verified = await t.registry.verifyAudit();
    expect(verified).toMatchObject({ ok: true, roots: 2, recordedRoots: 2, unsignedRoots: 1 });
  });

  it('cannot rewrite a finished training run, and the owner cannot either', async () => {
    const app = t.app.sql;
    const v = await seedVersion(t, 'rights', { checkpoints: [{ digest: 'c'.repeat(64), step: 5 }] });
    const where = v.key;
    await expect(app`update training_runs set recipe = '{}'::jsonb where key = ${where}`).rejects.toThrow(denied);
    await expect(app`update training_runs set seed = 1 where key = ${where}`).rejects.toThrow(denied);
    await expect(app`update training_runs set checkpoints = '[]'::jsonb where key = ${where}`).rejects.toThrow(/is completed: how it ended .* is not rewritten/);
    await expect(app`update training_runs set status = 'failed', error = 'x' where key = ${where}`).rejects.toThrow(/is not rewritten/);
    await expect(app`update training_runs set version_id = null where key = ${where}`).rejects.toThrow(/already produced a version/);
    await expect(admin`update training_runs set checkpoints = '[]'::jsonb where key = ${where}`).rejects.toThrow(/is not rewritten/);
    await expect(admin`update training_runs set recipe = '{}'::jsonb where key = ${where}`).rejects.toThrow(/are not rewritten/);
    const [run] = await app<{ checkpoints: unknown }[]>`select checkpoints from training_runs where key = ${where}`;
    expect(run!.checkpoints).toEqual([{ digest: 'c'.repeat(64), step: 5 }]);

    // A running run is finished as before (what training does), once.
    await t.registry.startTrainingRun({ line: 'rights', key: 'run-2', parentVersion: null, recipe: {}, seed: 1, drops: [] });
    await t.registry.finishTrainingRun('run-2', { status: 'failed', error: 'worker lost' });
    expect((await t.registry.getTrainingRun('run-2'))?.status).toBe('failed');
  });
});
