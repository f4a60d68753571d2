/**
 * The registry's base: its dependencies, and the audit facade every write goes through (each write is one
 * transaction that appends its audit entry last, so a change and its record commit together or not at all).
 */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { auditLog } from '../schemas/db/index.ts';
import type { ArtifactStore } from './artifacts.ts';
import {
  type AuditEntry,
  type AuditInput,
  type AuditVerification,
  type ExportedRoot,
  type SealFailure,
  type Tx,
  appendAuditEntry,
  exportAuditRoot,
  openSealFailure,
  recordSealFailure,
  sealAuditRoot,
  verifyAuditLog,
} from './audit.ts';
import { LOCKS, type Database } from './db.ts';
import { RegistryConflictError } from '../schemas/contracts/errors.ts';
import { RecordEventInput, parseInput } from './inputs.ts';
import type { Keys, Verifier } from './signing.ts';
import type { Json, RegistryDeps } from './types.ts';
import { lineRow } from './rows.ts';

/** What every aggregate module shares: the connection, the artifact store, the keys, and the audit facade. */
export class RegistryCore {
  readonly db: Database;
  readonly store: ArtifactStore;
  readonly keys: Keys;
  readonly auditDir: string;
  readonly trusted: readonly Verifier[];

  constructor(deps: RegistryDeps) {
    this.db = deps.db;
    this.store = deps.store;
    this.keys = deps.keys;
    this.auditDir = deps.auditDir;
    this.trusted = [deps.keys, ...(deps.trustedKeys ?? [])];
  }

  // ---- audit -------------------------------------------------------------------------------------------

  /** Appends an audit entry: inside `tx` when given (it must be the transaction's last write), else on its own. */
  async appendAudit(input: AuditInput, tx?: Tx): Promise<AuditEntry> {
    if (tx) return appendAuditEntry(tx, input);
    return this.db.transaction((t) => appendAuditEntry(t, input));
  }

  /**
   * Appends an audit entry for an event that changes no registry row (an approval, a regression report). With
   * `eventKey` (kept in the entry's details) it is idempotent: the key's entry, when there is one, is returned.
   */
  async recordEvent(input: { actor: string; action: string; line: string; version?: number; payload: Json; eventKey?: string }): Promise<AuditEntry> {
    const p = parseInput('recordEvent', RecordEventInput, input);
    const subject = p.version === undefined ? p.line : `${p.line}@${p.version}`;
    return this.db.transaction(async (tx) => {
      await lineRow(tx, p.line);
      if (p.eventKey !== undefined) {
        // The chain's lock (which the append takes anyway) first, so two attempts cannot both miss the entry.
        await tx.execute(sql.raw(`select pg_advisory_xact_lock(${LOCKS.audit[0]}, ${LOCKS.audit[1]})`));
        const [prior] = await tx
          .select()
          .from(auditLog)
          .where(sql`${auditLog.details} ? 'eventKey' and ${auditLog.details}->>'eventKey' = ${p.eventKey}`);
        if (prior) {
          if (prior.action !== p.action || prior.subject !== subject)
            throw new RegistryConflictError(`event key ${p.eventKey} was already used for ${prior.action} ${prior.subject} (audit entry ${prior.seq})`);
          return prior;
        }
      }
      return appendAuditEntry(tx, {
        actor: p.actor,
        action: p.action,
        subject,
        details: p.eventKey === undefined ? p.payload : { ...p.payload, eventKey: p.eventKey },
      });
    });
  }

  /** Audit entries in order; `after` and `limit` page, `subject` filters. */
  async listAudit(opts: { after?: number; limit?: number; subject?: string } = {}): Promise<AuditEntry[]> {
    return this.db
      .select()
      .from(auditLog)
      .where(and(gt(auditLog.seq, opts.after ?? 0), opts.subject === undefined ? undefined : eq(auditLog.subject, opts.subject)))
      .orderBy(asc(auditLog.seq))
      .limit(opts.limit ?? 1000);
  }

  /** Recomputes the hash chain and checks the signed roots; names the first entry that breaks. Read-only. */
  async verifyAudit(): Promise<AuditVerification> {
    return verifyAuditLog(this.db, this.auditDir, this.trusted);
  }

  /** Verifies the whole log, signs its current Merkle root and appends it to `<auditDir>/roots.jsonl` and the database; refuses if the log does not verify. */
  async exportAuditRoot(): Promise<ExportedRoot> {
    return exportAuditRoot(this.db, this.auditDir, this.keys, this.trusted);
  }

  /**
   * Signs a new root from the last one's frontier and the entries since (O(log n) plus the tail); refuses if the
   * tail or the last root does not check out. A failure is recorded in the audit log (once per reason) before it
   * is thrown, so `perennial status` and `audit verify` show it until a later seal covers it.
   */
  async sealAuditLog(): Promise<ExportedRoot> {
    try {
      return await sealAuditRoot(this.db, this.auditDir, this.keys, this.trusted);
    } catch (err) {
      await recordSealFailure(this.db, (err as Error).message);
      throw err;
    }
  }

  /** The last seal failure that no signed root has covered since, or null (from the database alone; verify checks the file too). */
  async sealFailure(): Promise<SealFailure | null> {
    return openSealFailure(this.db);
  }
}
