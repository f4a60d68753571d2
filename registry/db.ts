/**
 * Connections and migrations. The application connects as a non-owner role (`perennial_app` by default)
 * that may read and append but never delete, truncate or rewrite history; migrations and the role's grants
 * are applied with the owner's (admin) connection.
 */
import { fileURLToPath } from 'node:url';
import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from '../schemas/db/index.ts';

/** The Drizzle database type of the registry. */
export type Database = PostgresJsDatabase<typeof schema>;

/** A live connection: Drizzle for queries, the postgres.js client for raw SQL, and close(). */
export interface Connection {
  db: Database;
  sql: postgres.Sql;
  close(): Promise<void>;
}

/** The application role the app connects as. */
export interface AppRole {
  name: string;
  /** Set (and reset on every start) when given; omitted when an operator manages the role's login. */
  password?: string;
}

/** The default name of the application role. */
export const DEFAULT_APP_ROLE = 'perennial_app';

/** The folder of committed `drizzle-kit generate` migrations. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../schemas/migrations', import.meta.url));

// Advisory lock keys (two int4 keys: the project's tag and a purpose), shared by every process.
const LOCK_TAG = 0x7065726e; // 'pern'
// `audit` is also written out in perennial_audit_append (migration 0003).
export const LOCKS = { migrate: [LOCK_TAG, 1], audit: [LOCK_TAG, 2], seal: [LOCK_TAG, 3] } as const;

/**
 * Privileges of the application role per table: no DELETE or TRUNCATE anywhere (the registry is history),
 * only SELECT and INSERT on the append-only tables, and UPDATE only of the columns the registry changes. Every
 * table has its entry (test/stack/security-rights.test.ts lists them); one without gets SELECT alone.
 */
export const TABLE_PRIVILEGES: Record<string, string> = {
  // No INSERT: entries go in only through perennial_audit_append (migration 0003), which stamps the time,
  // takes the chain's lock and computes the hash itself.
  audit_log: 'SELECT',
  // Roots likewise, through perennial_audit_record_root (migration 0009): a row of the role's own would jam sealing.
  audit_roots: 'SELECT',
  releases: 'SELECT, INSERT',
  versions: 'SELECT, INSERT',
  version_files: 'SELECT, INSERT',
  version_drops: 'SELECT, INSERT',
  training_run_drops: 'SELECT, INSERT',
  evaluation_suites: 'SELECT, INSERT',
  plasticity_records: 'SELECT, INSERT',
  recipe_trials: 'SELECT, INSERT',
  rl_runs: 'SELECT, INSERT',
  // Column grants: a gate's verdict and a drop's digest and counts are facts; only an override or a status changes
  // (a failed drop sent again is accepted anew under its new ingest's key).
  gate_decisions: 'SELECT, INSERT, UPDATE (override_actor, override_reason, overridden_at)',
  data_drops: 'SELECT, INSERT, UPDATE (status, reason, ingest_key, accepted_seq)',
  // A run is finished once (how it ended, its checkpoints) and then names its version; its key, recipe and seed
  // never change. The trigger of migration 0009 keeps a finished run's record as it was written.
  training_runs: 'SELECT, INSERT, UPDATE (status, steps, tokens, flops, wall_ms, backend, final_loss, artifact_digest, checkpoints, error, finished_at, version_id)',
  // A channel moves (its version and epoch); which line and name it is does not.
  channels: 'SELECT, INSERT, UPDATE (version_number, epoch, updated_at)',
  // An application is re-bound (upsert by name): its binding and policy change, its name does not.
  applications: 'SELECT, INSERT, UPDATE (line_id, channel, policy, pinned_number, updated_at)',
  // A suite evaluated again overwrites its figures (upsert by version and suite).
  evaluations: 'SELECT, INSERT, UPDATE (metrics, data_digest, backend, weights_digest, code_revision, evaluated_at)',
  // A line's settings are edited in place (updateLine, adoptFoundation) and its version counter moves.
  lines: 'SELECT, INSERT, UPDATE',
};
const DEFAULT_PRIVILEGES = 'SELECT';

/**
 * Runs a Drizzle query as a prepared statement. Drizzle sends unnamed statements, which PostgreSQL parses
 * and plans on every call; prepared, postgres.js caches the statement per connection (a third of the time).
 */
export function prepared<T>(query: { prepare(name: string): { execute(): Promise<T> } }): Promise<T> {
  return query.prepare('registry').execute();
}

const dialect = new PgDialect({ casing: 'snake_case' });

/**
 * Runs a raw `sql` query as a prepared statement on the pool and returns its rows. For large statements
 * (lineage's) planning costs more than executing, and Drizzle's execute() plans them on every call.
 */
export async function queryPrepared<T>(db: Database, query: SQL): Promise<T[]> {
  const { sql: text, params } = dialect.sqlToQuery(query);
  const client = (db as Database & { $client: postgres.Sql }).$client;
  return (await client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as T[];
}

/** Opens a pooled connection; errors (refused, reset, auth) reject the query that hit them, never crash the process. */
export function connectDatabase(url: string, opts: { max?: number } = {}): Connection {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 30,
    // bigint columns come back as strings by default; Drizzle maps its own, and raw queries cast explicitly.
  });
  const db = drizzle({ client: sql, schema, casing: 'snake_case' });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}

/** `adminUrl` with the user and password of `role` instead. */
export function appDatabaseUrl(adminUrl: string, role: { name: string; password?: string }): string {
  const url = new URL(adminUrl);
  url.username = encodeURIComponent(role.name);
  url.password = role.password === undefined ? '' : encodeURIComponent(role.password);
  return url.toString();
}

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a password may not contain NUL');
  return `'${value.replace(/'/g, "''")}'`;
}

/** Errors two servers' sessions raise when they create or grant to the same role at the same moment. */
function isConcurrentCatalogError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === '23505' || e.code === '42710' || e.code === '40001' || e.code === '40P01' || (e.code === 'XX000' && /concurrently/.test(e.message ?? ''));
}

async function retryCatalog<T>(what: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await what();
    } catch (err) {
      if (attempt >= 20 || !isConcurrentCatalogError(err)) throw err;
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * (attempt + 1)));
    }
  }
}

/**
 * Applies the committed migrations with the owner's connection, then creates or updates the application
 * role and its grants. Idempotent; two processes may run it at once (a session advisory lock serialises
 * them, and role creation, which is cluster-wide, retries on the races the lock cannot cover).
 */
export async function migrateDatabase(adminUrl: string, opts: { appRole?: AppRole; migrationsFolder?: string } = {}): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    // max: 1 keeps the migrator on the connection that holds the lock.
    await sql`select pg_advisory_lock(${LOCKS.migrate[0]}, ${LOCKS.migrate[1]})`;
    try {
      const db = drizzle({ client: sql, casing: 'snake_case' });
      await migrate(db, { migrationsFolder: opts.migrationsFolder ?? MIGRATIONS_FOLDER, migrationsSchema: 'drizzle', migrationsTable: '__drizzle_migrations' });
      if (opts.appRole) await grantAppRole(sql, opts.appRole);
    } finally {
      await sql`select pg_advisory_unlock(${LOCKS.migrate[0]}, ${LOCKS.migrate[1]})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function grantAppRole(sql: postgres.Sql, role: AppRole): Promise<void> {
  if (!ROLE_NAME.test(role.name)) throw new Error(`invalid application role name ${JSON.stringify(role.name)}`);
  const ident = quoteIdent(role.name);
  const [me] = await sql<{ user: string; db: string }[]>`select current_user as user, current_database() as db`;
  if (me!.user === role.name) throw new Error(`the application role ${role.name} must not be the role that owns the schema`);

  await retryCatalog(async () => {
    const [exists] = await sql<{ n: number }[]>`select count(*)::int as n from pg_roles where rolname = ${role.name}`;
    if (exists!.n === 0) {
      if (role.password === undefined) throw new Error(`role ${role.name} does not exist; create it or give a password so it can be created`);
      await sql.unsafe(`CREATE ROLE ${ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD ${quoteLiteral(role.password)}`);
    } else if (role.password !== undefined) {
      await sql.unsafe(`ALTER ROLE ${ident} LOGIN PASSWORD ${quoteLiteral(role.password)}`);
    }
  });

  // Best effort: on a managed server the migrating role may own the tables but not the database or the
  // public schema; PUBLIC then usually has CONNECT already, and PostgreSQL 15+ gives PUBLIC no CREATE.
  for (const statement of [`GRANT CONNECT ON DATABASE ${quoteIdent(me!.db)} TO ${ident}`, `REVOKE CREATE ON SCHEMA public FROM ${ident}`]) {
    await retryCatalog(() => sql.unsafe(statement)).catch((err: { code?: string }) => {
      if (err.code !== '42501') throw err;
    });
  }
  const tables = await sql<{ name: string }[]>`select tablename as name from pg_tables where schemaname = 'public' order by tablename`;
  await retryCatalog(() =>
    sql.begin(async (tx) => {
      await tx.unsafe(`GRANT USAGE ON SCHEMA public TO ${ident}`);
      for (const { name } of tables) {
        const table = `public.${quoteIdent(name)}`;
        // Revoke first, so a privilege removed from the list is taken away on the next start.
        await tx.unsafe(`REVOKE ALL ON ${table} FROM ${ident}`);
        await tx.unsafe(`GRANT ${TABLE_PRIVILEGES[name] ?? DEFAULT_PRIVILEGES} ON ${table} TO ${ident}`);
      }
      await tx.unsafe(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${ident}`);
      await tx.unsafe(`GRANT EXECUTE ON FUNCTION public.perennial_audit_append(text, text, text, jsonb) TO ${ident}`);
      await tx.unsafe(`GRANT EXECUTE ON FUNCTION public.perennial_audit_record_root(jsonb, jsonb) TO ${ident}`);
      await tx.unsafe(`REVOKE ALL ON SCHEMA drizzle FROM ${ident}`);
    }),
  );
}
