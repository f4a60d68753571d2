/**
 * The audit log: append-only (triggers in migration 0001), hash-chained, written only through the
 * `perennial_audit_append` function (migration 0003), Merkle roots signed outside the database and recorded in it.
 */
import { sql } from 'drizzle-orm';
import { bigint, check, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { digestCheck, instant, notBlank } from './columns.ts';

/** The `prevHash` of the first entry. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/**
 * One row per audited write. `seq` is assigned under a transaction-scoped advisory lock (not a sequence,
 * which leaves gaps on rollback), so the chain is dense and never forks.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    seq: bigint({ mode: 'number' }).primaryKey(),
    at: instant().notNull(),
    actor: text().notNull(),
    action: text().notNull(),
    subject: text().notNull(),
    details: jsonb().$type<Record<string, unknown>>().notNull(),
    prevHash: text().notNull(),
    hash: text().notNull(),
  },
  (t) => [
    uniqueIndex('audit_log_hash_key').on(t.hash),
    // One entry per recorded event's key (migration 0008): recordEvent is idempotent by it.
    uniqueIndex('audit_log_event_key')
      .on(sql`(${t.details}->>'eventKey')`)
      .where(sql`${t.details} ? 'eventKey'`),
    check('audit_log_seq_positive', sql`${t.seq} >= 1`),
    check('audit_log_genesis', sql`(${t.seq} = 1) = (${t.prevHash} = '0000000000000000000000000000000000000000000000000000000000000000')`),
    check('audit_log_action_format', sql`${t.action} ~ '^[a-z][a-z_]*(\\.[a-z][a-z_]*)*$'`),
    digestCheck('audit_log_prev_hash_format', t.prevHash),
    digestCheck('audit_log_hash_format', t.hash),
    notBlank('audit_log_actor_not_blank', t.actor),
  ],
);

/**
 * One row per signed root (migration 0003): the database's own count and last root, so a deleted or truncated
 * `roots.jsonl` is noticed, and the Merkle frontier (the roots of the perfect subtrees, largest first) of the
 * tree that was signed, so the next seal hashes only the entries since. Append-only, like the log; written only
 * through `perennial_audit_record_root` (migration 0009).
 */
export const auditRoots = pgTable(
  'audit_roots',
  {
    seq: bigint({ mode: 'number' }).primaryKey(),
    treeSize: bigint({ mode: 'number' }).notNull(),
    rootHash: text().notNull(),
    lastHash: text().notNull(),
    frontier: jsonb().$type<string[]>().notNull(),
    keyId: text().notNull(),
    signedAt: instant().notNull(),
    /** The signed DSSE envelope (migration 0009; null on older rows): a row whose signature fails is passed over. */
    envelope: jsonb().$type<Record<string, unknown>>(),
  },
  (t) => [
    check('audit_roots_seq_positive', sql`${t.seq} >= 1`),
    check('audit_roots_tree_size_nonnegative', sql`${t.treeSize} >= 0`),
    digestCheck('audit_roots_root_hash_format', t.rootHash),
    digestCheck('audit_roots_last_hash_format', t.lastHash),
    check('audit_roots_frontier_array', sql`jsonb_typeof(${t.frontier}) = 'array'`),
    check('audit_roots_envelope_object', sql`${t.envelope} is null or jsonb_typeof(${t.envelope}) = 'object'`),
  ],
);
