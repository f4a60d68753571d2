/**
 * The audit chain: each entry carries the hash of the previous entry and of its own canonical JSON. Entries
 * are appended only by the database function `perennial_audit_append` (migration 0003), which takes the
 * chain's transaction-scoped lock, stamps the time and computes the hash; the application role has no INSERT
 * on the table, so it cannot write an entry of its own making. An RFC 6962 Merkle root over the entries is
 * signed with the installation key and appended to a file outside the database (and recorded in it, with the
 * tree's frontier, so a deleted file is noticed and the next seal hashes only the new entries), so a rewrite by
 * a database superuser (who can disable triggers and recompute every hash) is still found.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { asc, desc, gt, sql } from 'drizzle-orm';
import { AuditLogBrokenError } from '../schemas/contracts/errors.ts';
import { AUDIT_GENESIS_HASH, auditLog, auditRoots } from '../schemas/db/index.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';
import { LOCKS, prepared, type Database } from './db.ts';
import { MerkleFrontier, MerkleTree } from './merkle.ts';
import { AUDIT_ROOT_PAYLOAD_TYPE, signEnvelope, verifyEnvelope, type Keys, type Verifier } from './signing.ts';

export { MerkleFrontier, MerkleTree } from './merkle.ts';

/** A Drizzle transaction on the registry database. */
export type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

/** What a caller says about an audited write. */
export interface AuditInput {
  actor: string;
  /** Dotted lower-case verb, e.g. `channel.move`. */
  action: string;
  /** What was acted on, e.g. `support@stable`. */
  subject: string;
  details: Record<string, unknown>;
}

/** A stored audit entry. */
export interface AuditEntry extends AuditInput {
  seq: number;
  at: Date;
  prevHash: string;
  hash: string;
}

/** The file of signed roots, one DSSE envelope per line. */
export const ROOTS_FILE = 'roots.jsonl';

/** Every field of an entry but its hash. */
function bodyFields(e: Omit<AuditEntry, 'hash'>) {
  return { seq: e.seq, at: e.at.toISOString(), actor: e.actor, action: e.action, subject: e.subject, details: e.details, prevHash: e.prevHash };
}

/** The bytes an entry's `hash` covers: every field but the hash itself, canonically. */
export function entryBody(e: Omit<AuditEntry, 'hash'>): string {
  return canonicalJson(bodyFields(e));
}

/** The bytes of an entry as a Merkle leaf: the whole entry, hash included (canonical JSON sorts the keys). */
export function entryLeaf(e: AuditEntry): string {
  return canonicalJson({ ...bodyFields(e), hash: e.hash });
}

/**
 * Appends an entry inside `tx` through `perennial_audit_append`. Call it last in the transaction: the function
 * takes the chain's lock, which is then held only until commit, and a transaction that rolls back takes its
 * entry with it. The database computes the hash; it is checked here against canonical.ts, so an entry that
 * `audit verify` would not recompute identically is never committed.
 */
export async function appendAuditEntry(tx: Tx, input: AuditInput): Promise<AuditEntry> {
  const details = canonicalJson(input.details); // refuse what cannot be hashed before taking the lock
  const rows = (await tx.execute(
    sql`select seq::text as seq, at, prev_hash, hash from perennial_audit_append(${input.actor}, ${input.action}, ${input.subject}, ${details}::jsonb)`,
  )) as unknown as { seq: string; at: Date | string; prev_hash: string; hash: string }[];
  const row = rows[0]!;
  const entry: AuditEntry = {
    seq: Number(row.seq),
    at: new Date(row.at),
    actor: input.actor,
    action: input.action,
    subject: input.subject,
    details: JSON.parse(details) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
  const expected = sha256Hex(entryBody(entry));
  if (expected !== entry.hash)
    throw new Error(
      `audit entry ${entry.seq} (${entry.action} ${entry.subject}): the database hashed it as ${entry.hash.slice(0, 16)}…, canonical.ts as ${expected.slice(0, 16)}…; not committed`,
    );
  return entry;
}

/** The signed statement about the log that goes into the roots file. */
export interface AuditRoot {
  _type: 'perennial.audit-root/v1';
  treeSize: number;
  rootHash: string;
  /** Hash of entry `treeSize` (the chain head when the root was taken). */
  lastHash: string;
  exportedAt: string;
  keyId: string;
}

/** One finding of audit verification. */
export interface AuditProblem {
  /** The first entry concerned, or null when the problem is in the roots file itself. */
  seq: number | null;
  /**
   * `chain`: an entry no longer matches its hash or predecessor; `root`: a signed root no longer matches;
   * `roots-file`: a root line is unreadable, unsigned or torn; `seal`: the last seal failed and no root has
   * anchored the log since (the log itself may be intact).
   */
  kind: 'chain' | 'root' | 'roots-file' | 'seal';
  reason: string;
}

/** The result of verifying the audit log. */
export interface AuditVerification {
  ok: boolean;
  entries: number;
  /** Signed roots checked against the log. */
  roots: number;
  /** Roots the database records as signed; each must be in the roots file. */
  recordedRoots: number;
  /** Rows of audit_roots whose envelope has no valid signature by a trusted key: passed over, never built on. */
  unsignedRoots: number;
  /** The last recorded seal failure that no signed root has covered since. */
  sealFailure?: SealFailure;
  firstBad?: AuditProblem;
  problems: AuditProblem[];
}

const BATCH = 5000;

/**
 * Reads the log in seq order from entry `after + 1`, checking that each entry follows `prevHash` and its
 * predecessor and hashes to its recorded hash; hands each entry to `visit`.
 */
async function scanChain(
  db: Database | Tx,
  start: { after: number; prevHash: string },
  visit: (entry: AuditEntry) => void,
): Promise<{ count: number; problems: AuditProblem[] }> {
  const problems: AuditProblem[] = [];
  let prevHash = start.prevHash;
  let expected = start.after + 1;
  let count = 0;
  for (;;) {
    const rows = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, expected - 1))
      .orderBy(asc(auditLog.seq))
      .limit(BATCH);
    for (const row of rows) {
      if (row.seq !== expected) {
        problems.push({
          seq: expected,
          kind: 'chain',
          reason: `entries ${expected}..${row.seq - 1} are missing (the chain jumps from ${expected - 1} to ${row.seq})`,
        });
        expected = row.seq;
      }
      if (row.prevHash !== prevHash) {
        problems.push({
          seq: row.seq,
          kind: 'chain',
          reason: `entry ${row.seq} (${row.action} ${row.subject}) does not follow entry ${row.seq - 1}: its prevHash is ${row.prevHash.slice(0, 16)}…, but entry ${row.seq - 1} is recorded as ${prevHash.slice(0, 16)}… (one of the two was rewritten)`,
        });
      }
      const recomputed = sha256Hex(entryBody(row));
      if (recomputed !== row.hash) {
        problems.push({
          seq: row.seq,
          kind: 'chain',
          reason: `entry ${row.seq} (${row.action} ${row.subject}) was altered: its content hashes to ${recomputed.slice(0, 16)}…, not its recorded ${row.hash.slice(0, 16)}…`,
        });
      }
      visit(row);
      count += 1;
      prevHash = row.hash;
      expected += 1;
    }
    if (rows.length < BATCH) break;
  }
  return { count, problems };
}

/** The action of the audit entry a failed seal leaves (`recordSealFailure`). */
export const SEAL_FAILED_ACTION = 'audit.seal_failed';
/** The action of the audit entry a seal leaves when it repairs a torn last line of the roots file. */
export const ROOTS_REPAIR_ACTION = 'audit.roots_repair';

/** A seal that failed, as its audit entry records it. */
export interface SealFailure {
  seq: number;
  at: Date;
  reason: string;
}

/**
 * The signed roots file's complete lines, and the bytes after its last newline (a write that was cut short);
 * null when the file does not exist.
 */
async function readRoots(auditDir: string): Promise<{ lines: string[]; torn: { line: number; bytes: number } | null } | null> {
  let text: string;
  try {
    text = await readFile(join(auditDir, ROOTS_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parts = text.split('\n');
  const tail = parts.pop()!; // '' when the file ends in a newline
  const lines = parts.filter((l) => l.trim() !== '');
  return { lines, torn: tail === '' ? null : { line: lines.length + 1, bytes: Buffer.byteLength(tail) } };
}

/** Whether a row of audit_roots carries a valid signature over what it records (rows before migration 0009 carry none). */
function rowSigned(
  row: { treeSize: number; rootHash: string; lastHash: string; envelope: Record<string, unknown> | null },
  trusted: readonly Verifier[],
): boolean {
  if (row.envelope === null) return true; // recorded before envelopes were kept: only the roots file vouches for it
  const opened = openRoot(JSON.stringify(row.envelope), 'row', trusted);
  return 'root' in opened && opened.root.treeSize === row.treeSize && opened.root.rootHash === row.rootHash && opened.root.lastHash === row.lastHash;
}

/** A roots-file line's root when its signature holds, else why not. */
function openRoot(text: string, where: string, trusted: readonly Verifier[]): { root: AuditRoot } | { problem: string } {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return { problem: `${where} is not JSON` };
  }
  const check = verifyEnvelope(envelope, AUDIT_ROOT_PAYLOAD_TYPE, trusted);
  if (!check.ok) return { problem: `${where}: ${check.reason}` };
  const root = JSON.parse(check.payload.toString('utf8')) as AuditRoot;
  if (!Number.isSafeInteger(root.treeSize) || root.treeSize < 0 || typeof root.rootHash !== 'string') return { problem: `${where}: malformed root` };
  return { root };
}

/**
 * Recomputes the chain and checks every signed root against it, and the roots file against the roots the
 * database records. Names the first entry that breaks: exactly, when an entry no longer matches its hash or
 * its predecessor; as "at or after", when the chain was rewritten consistently and only a signed root betrays it.
 */
export async function verifyAuditLog(db: Database | Tx, auditDir: string, trusted: readonly Verifier[]): Promise<AuditVerification> {
  return (await verifyWithTree(db, auditDir, trusted)).verification;
}

async function verifyWithTree(
  db: Database | Tx,
  auditDir: string,
  trusted: readonly Verifier[],
): Promise<{ verification: AuditVerification; tree: MerkleTree; hashes: string[] }> {
  // Roots first (the database's, then the file's), then the chain: a seal writes its line before it commits
  // its row, and signs only committed entries, so whatever is read here is covered by what is read after it.
  const rows = await db
    .select({
      seq: auditRoots.seq,
      treeSize: auditRoots.treeSize,
      rootHash: auditRoots.rootHash,
      lastHash: auditRoots.lastHash,
      envelope: auditRoots.envelope,
    })
    .from(auditRoots)
    .orderBy(asc(auditRoots.seq));
  // A row nobody with the key signed (the function checks what it can, not signatures) is not a root.
  const recorded = rows.filter((r) => rowSigned(r, trusted));
  const file = await readRoots(auditDir);
  const lines = file?.lines ?? null;
  const tree = new MerkleTree();
  const hashes: string[] = [];
  let lastFailure: SealFailure | undefined;
  const { problems } = await scanChain(db, { after: 0, prevHash: AUDIT_GENESIS_HASH }, (e) => {
    tree.push(entryLeaf(e));
    hashes.push(e.hash);
    if (e.action === SEAL_FAILED_ACTION) lastFailure = { seq: e.seq, at: e.at, reason: String(e.details.reason ?? 'unknown') };
  });
  const n = tree.size;
  const signed: { line: number; root: AuditRoot }[] = [];
  (lines ?? []).forEach((text, i) => {
    const opened = openRoot(text, `${ROOTS_FILE} line ${i + 1}`, trusted);
    if ('problem' in opened) problems.push({ seq: null, kind: 'roots-file', reason: opened.problem });
    else signed.push({ line: i + 1, root: opened.root });
  });
  if (file?.torn)
    problems.push({
      seq: null,
      kind: 'roots-file',
      reason: `${ROOTS_FILE} ends in a torn line (line ${file.torn.line}, ${file.torn.bytes} bytes and no newline): a seal's write was cut short (a full disk or a file-size limit); the next seal repairs it`,
    });

  // The database keeps its own list of the roots it signed: a file deleted, truncated or swapped for an older
  // copy no longer holds them all. (A root in the file the database lacks is a seal whose commit failed.)
  const inFile = new Set(signed.map((s) => `${s.root.treeSize} ${s.root.rootHash}`));
  const missing = recorded.filter((r) => !inFile.has(`${r.treeSize} ${r.rootHash}`));
  if (missing.length > 0) {
    const first = missing[0]!;
    problems.push({
      seq: null,
      kind: 'roots-file',
      reason:
        lines === null
          ? `the database records ${recorded.length} signed roots but ${ROOTS_FILE} is missing (deleted or moved)`
          : `the database records ${recorded.length} signed roots but ${ROOTS_FILE} holds ${signed.length} valid ones: ${missing.length} recorded root(s) are not in it, the first over ${first.treeSize} entries (${first.rootHash.slice(0, 16)}…) (the file was truncated, edited or replaced)`,
    });
  }

  // The largest signed size the log still matches bounds where a consistent rewrite can have started.
  const matches = (r: AuditRoot) => r.treeSize <= n && tree.root(r.treeSize) === r.rootHash && (r.treeSize === 0 || hashes[r.treeSize - 1] === r.lastHash);
  const good = signed.filter((s) => matches(s.root)).map((s) => s.root.treeSize);
  for (const { line, root } of [...signed].sort((a, b) => a.root.treeSize - b.root.treeSize)) {
    if (matches(root)) continue;
    const below = Math.max(0, ...good.filter((size) => size < root.treeSize));
    if (root.treeSize > n) {
      problems.push({
        seq: n + 1,
        kind: 'root',
        reason: `the log has ${n} entries but a root signed at ${root.exportedAt} (${ROOTS_FILE} line ${line}) covers ${root.treeSize}: entries ${n + 1}..${root.treeSize} were deleted`,
      });
    } else {
      problems.push({
        seq: below + 1,
        kind: 'root',
        reason:
          `the first ${root.treeSize} entries no longer match the root signed at ${root.exportedAt} (${ROOTS_FILE} line ${line}): the log was rewritten at or after entry ${below + 1}` +
          (below > 0 ? ` (entries 1..${below} match a signed root)` : ''),
      });
    }
  }

  // A failed seal no signed root has covered since: the log went unanchored from then on, and the loop only logged it.
  const sealFailure = lastFailure && !signed.some((s) => s.root.treeSize >= lastFailure!.seq) ? lastFailure : undefined;
  if (sealFailure)
    problems.push({
      seq: null,
      kind: 'seal',
      reason: `the last seal failed (audit entry ${sealFailure.seq}, ${sealFailure.at.toISOString()}): ${sealFailure.reason}; no signed root covers the log since (perennial audit seal retries)`,
    });

  // An exact chain break beats a range from the roots; otherwise the lowest entry named.
  const chainBreak = problems.find((p) => p.kind === 'chain');
  const byEntry = problems.filter((p) => p.seq !== null).sort((a, b) => a.seq! - b.seq!);
  const firstBad = chainBreak ?? byEntry[0] ?? problems[0];
  const verification = {
    ok: problems.length === 0,
    entries: n,
    roots: signed.length,
    recordedRoots: recorded.length,
    unsignedRoots: rows.length - recorded.length,
    ...(firstBad ? { firstBad } : {}),
    ...(sealFailure ? { sealFailure } : {}),
    problems,
  };
  return { verification, tree, hashes };
}

/** The result of an export or seal: what was signed, where it went, and how many entries were hashed for it. */
export interface ExportedRoot {
  root: AuditRoot;
  file: string;
  /** Entries read and hashed to compute the root: the whole log for an export, the tail since the last root for a seal. */
  hashed: number;
  /** The torn last line of the roots file this seal repaired first, if there was one. */
  repaired?: RootsRepair;
}

/**
 * Verifies the whole log (chain, signed roots, the database's record of them), then signs its current Merkle
 * root and appends it to `<auditDir>/roots.jsonl` (fsynced) and to the database with the tree's frontier.
 * Refuses to sign a log that fails verification, so a tampered log is never laundered by a fresh signature.
 * O(n): `perennial audit export` uses it; the loop seals with `sealAuditRoot`.
 */
export async function exportAuditRoot(db: Database, auditDir: string, keys: Keys, trusted: readonly Verifier[]): Promise<ExportedRoot> {
  const repaired = await repairRootsFile(db, auditDir, trusted);
  return db.transaction(async (tx) => {
    await lockSeal(tx);
    // Read committed, after the lock: the scan pages through a prefix of the log (entries commit in seq order,
    // each under the chain's lock), and the tree it checks is the tree that is signed.
    const { verification, tree, hashes } = await verifyWithTree(tx, auditDir, trusted);
    // An earlier failed seal is what this root mends, not a reason to refuse it.
    const blocking = verification.problems.find((p) => p.kind !== 'seal');
    if (blocking) throw new AuditLogBrokenError((verification.firstBad?.kind === 'seal' ? blocking : verification.firstBad!).reason);
    const frontier = MerkleFrontier.of(tree);
    return {
      ...(await signAndRecord(tx, auditDir, keys, frontier, hashes[tree.size - 1] ?? AUDIT_GENESIS_HASH)),
      hashed: tree.size,
      ...(repaired ? { repaired } : {}),
    };
  });
}

/**
 * Signs a new root from the last recorded one: its frontier (which must hash to a root the roots file holds
 * with a valid signature, so a frontier written into the database by anyone else is never built on) extended
 * by the entries since, each checked against its hash and predecessor. O(log n) plus the tail. Entries before
 * the last root are not re-read: a rewrite there cannot reach the new root (it extends the signed tree, not
 * the rewritten log), and `audit verify` finds it. Without a recorded root it falls back to a full export.
 */
export async function sealAuditRoot(db: Database, auditDir: string, keys: Keys, trusted: readonly Verifier[]): Promise<ExportedRoot> {
  const refuse = (why: string) => new AuditLogBrokenError(why);
  const repaired = await repairRootsFile(db, auditDir, trusted);
  const sealed = await db.transaction(async (tx) => {
    await lockSeal(tx);
    const last = await lastSignedRow(tx, trusted);
    if (!last) return null;
    const where = `the database's last root (over ${last.treeSize} entries, ${last.rootHash.slice(0, 16)}…)`;
    if (!(await signedRootInFile(auditDir, trusted, last)))
      throw refuse(
        `${where} is not in ${ROOTS_FILE} with a valid signature (the file was deleted, truncated or edited, or the database's record forged); run perennial audit verify`,
      );
    let frontier: MerkleFrontier;
    try {
      frontier = new MerkleFrontier(last.treeSize, last.frontier);
    } catch (err) {
      throw refuse(`${where} has a malformed frontier: ${(err as Error).message}`);
    }
    if (frontier.root() !== last.rootHash) throw refuse(`${where}: its recorded frontier does not hash to it`);
    if (last.treeSize > 0) {
      const [head] = await tx
        .select({ hash: auditLog.hash })
        .from(auditLog)
        .where(sql`${auditLog.seq} = ${last.treeSize}`);
      if (head?.hash !== last.lastHash)
        throw refuse(`entry ${last.treeSize}, the last one ${where} covers, is ${head ? 'no longer the entry that was signed' : 'gone'}`);
    }
    let lastHash = last.lastHash;
    const { count, problems } = await scanChain(tx, { after: last.treeSize, prevHash: last.lastHash }, (e) => {
      frontier.push(entryLeaf(e));
      lastHash = e.hash;
    });
    if (problems.length > 0) throw refuse(problems[0]!.reason);
    return { ...(await signAndRecord(tx, auditDir, keys, frontier, lastHash)), hashed: count, ...(repaired ? { repaired } : {}) };
  });
  return sealed ?? exportAuditRoot(db, auditDir, keys, trusted).then((e) => (repaired ? { ...e, repaired } : e));
}

/** The newest row of audit_roots with a valid signature (or from before signatures were kept); rows without one are passed over. */
async function lastSignedRow(tx: Tx, trusted: readonly Verifier[]) {
  for (let before = Number.MAX_SAFE_INTEGER; ;) {
    const rows = await tx
      .select()
      .from(auditRoots)
      .where(sql`${auditRoots.seq} < ${before}`)
      .orderBy(desc(auditRoots.seq))
      .limit(100);
    const found = rows.find((r) => rowSigned(r, trusted));
    if (found) return found;
    if (rows.length < 100) return undefined;
    before = rows.at(-1)!.seq;
  }
}

async function lockSeal(tx: Tx): Promise<void> {
  // One sealer at a time: each root's row number follows the last, and the file gets whole lines in order.
  await tx.execute(sql.raw(`select pg_advisory_xact_lock(${LOCKS.seal[0]}, ${LOCKS.seal[1]})`));
}

/** Whether the roots file holds `root` with a valid signature; reads the file's end first (the newest roots). */
async function signedRootInFile(auditDir: string, trusted: readonly Verifier[], root: { treeSize: number; rootHash: string }): Promise<boolean> {
  const file = join(auditDir, ROOTS_FILE);
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    for (const want of [Math.min(size, 64 * 1024), size]) {
      const buffer = Buffer.alloc(want);
      await handle.read(buffer, 0, want, size - want);
      const lines = buffer.toString('utf8').split('\n');
      if (want < size) lines.shift(); // a partial first line
      for (const text of lines.reverse()) {
        if (text.trim() === '') continue;
        const opened = openRoot(text, ROOTS_FILE, trusted);
        if ('root' in opened && opened.root.treeSize === root.treeSize && opened.root.rootHash === root.rootHash) return true;
      }
      if (want === size) break;
    }
    return false;
  } finally {
    await handle.close();
  }
}

/**
 * Signs the root of `frontier`, appends it to the roots file (every byte, fsynced, or it throws), then records it
 * in the database in the caller's transaction through `perennial_audit_record_root` (migration 0009). A crash or
 * a short write between the two leaves a signed root (or a torn line, which the next seal repairs) in the file
 * the database lacks, which verification accepts; the other way round cannot happen.
 */
async function signAndRecord(tx: Tx, auditDir: string, keys: Keys, frontier: MerkleFrontier, lastHash: string): Promise<Omit<ExportedRoot, 'hashed'>> {
  const root: AuditRoot = {
    _type: 'perennial.audit-root/v1',
    treeSize: frontier.size,
    rootHash: frontier.root(),
    lastHash,
    exportedAt: new Date().toISOString(),
    keyId: keys.keyId,
  };
  const envelope = signEnvelope(keys, AUDIT_ROOT_PAYLOAD_TYPE, Buffer.from(canonicalJson(root), 'utf8'));
  await mkdir(auditDir, { recursive: true, mode: 0o700 });
  await chmod(auditDir, 0o700);
  const file = join(auditDir, ROOTS_FILE);
  // One write with O_APPEND: concurrent exporters add whole lines, never interleave or overwrite.
  const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.chmod(0o600);
    await writeFully(handle, Buffer.from(canonicalJson(envelope) + '\n', 'utf8'), file);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await tx.execute(sql`select perennial_audit_record_root(${canonicalJson(envelope)}::text::jsonb, ${JSON.stringify(frontier.nodes())}::text::jsonb)`);
  return { root, file };
}

/**
 * Writes all of `bytes` or throws. One write(2) may write fewer bytes than asked (a full disk, a file-size
 * limit) without an error; FileHandle.write returns that count and does not go on, so a root was cut mid-line.
 */
async function writeFully(handle: FileHandle, bytes: Buffer, file: string): Promise<void> {
  let done = 0;
  try {
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, null);
      if (bytesWritten <= 0) throw new Error('no progress');
      done += bytesWritten;
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(
      `could not write the signed root to ${file}: ${done} of ${bytes.length} bytes written (${e.code ?? e.message}); the root is not recorded, and the next seal repairs the file`,
      { cause: err },
    );
  }
}

/** What a seal did to a roots file that ended in a torn line. */
export interface RootsRepair {
  /** `truncated`: the partial line was cut off; `completed`: it was a whole signed root short of its newline. */
  action: 'truncated' | 'completed';
  /** The file's size before the repair and the offset where the torn line began. */
  size: number;
  offset: number;
  /** The audit entry that records the repair, with the torn bytes. */
  seq: number;
}

/**
 * Repairs a roots file whose last line was cut short (a full disk, a crash mid-write): under the seal lock, keeps
 * the torn bytes in an audit entry (base64, with their sha256), then truncates the file back to its last whole
 * line, or adds the newline when the torn line is a whole signed root, and fsyncs. Nothing to do returns null.
 * The entry commits only after the file was repaired; were the commit lost, the file is still whole.
 */
async function repairRootsFile(db: Database, auditDir: string, trusted: readonly Verifier[]): Promise<RootsRepair | null> {
  const file = join(auditDir, ROOTS_FILE);
  // Checked first without the lock (the usual case costs one read of one byte), then again under it.
  if (!(await endsTorn(file))) return null;
  return db.transaction(async (tx) => {
    await lockSeal(tx);
    return withFile(file, constants.O_RDWR, async (handle) => {
      const size = await tornSize(handle);
      if (size === null) return null;
      // Find the last newline, reading back in 64 KiB blocks (a root line is under 1 KiB).
      let offset = 0;
      for (let end = size; end > 0 && offset === 0;) {
        const start = Math.max(0, end - 64 * 1024);
        const block = Buffer.alloc(end - start);
        await handle.read(block, 0, block.length, start);
        const i = block.lastIndexOf(0x0a);
        if (i >= 0) offset = start + i + 1;
        end = start;
      }
      const torn = Buffer.alloc(size - offset);
      await handle.read(torn, 0, torn.length, offset);
      const whole = 'root' in openRoot(torn.toString('utf8'), ROOTS_FILE, trusted);
      const action = whole ? 'completed' : 'truncated';
      const entry = await appendAuditEntry(tx, {
        actor: 'perennial',
        action: ROOTS_REPAIR_ACTION,
        subject: ROOTS_FILE,
        details: {
          action,
          size,
          offset,
          bytes: torn.length,
          sha256: createHash('sha256').update(torn).digest('hex'),
          torn: torn.toString('base64'),
        },
      });
      if (whole) await writeFully(handle, Buffer.from('\n'), file);
      else await handle.truncate(offset);
      await handle.sync();
      return { action, size, offset, seq: entry.seq };
    });
  });
}

/** Whether the roots file exists and its last byte is not a newline. */
async function endsTorn(file: string): Promise<boolean> {
  return (await withFile(file, constants.O_RDONLY, tornSize)) !== null;
}

/** The size of an open file whose last byte is not a newline; null when it is empty or ends in one. */
async function tornSize(handle: FileHandle): Promise<number | null> {
  const { size } = await handle.stat();
  if (size === 0) return null;
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  return last[0] === 0x0a ? null : size;
}

/** Runs `fn` on the file opened without following a link, closing it after; null when there is no file. */
async function withFile<T>(file: string, flags: number, fn: (handle: FileHandle) => Promise<T | null>): Promise<T | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, flags | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

/**
 * Records a failed seal as an audit entry (the loop carries on; `audit verify` and `perennial status` show it
 * until a later seal covers it). A retry failing the same way adds nothing. Best effort: a database that cannot
 * take the entry either is left to the caller's own error.
 */
export async function recordSealFailure(db: Database, reason: string): Promise<SealFailure | null> {
  const text = reason.slice(0, 2000);
  return db
    .transaction(async (tx) => {
      const failure = await openSealFailure(tx);
      if (failure?.reason === text) return failure;
      const entry = await appendAuditEntry(tx, { actor: 'perennial', action: SEAL_FAILED_ACTION, subject: ROOTS_FILE, details: { reason: text } });
      return { seq: entry.seq, at: entry.at, reason: text };
    })
    .catch(() => null);
}

/**
 * The last seal failure no root recorded since covers, or null. Read from the database alone (cheap, for
 * `perennial status`); `audit verify` also checks the roots file.
 */
export async function openSealFailure(db: Database | Tx): Promise<SealFailure | null> {
  const [failed] = await db
    .select({ seq: auditLog.seq, at: auditLog.at, details: auditLog.details })
    .from(auditLog)
    .where(sql`${auditLog.action} = ${SEAL_FAILED_ACTION}`)
    .orderBy(desc(auditLog.seq))
    .limit(1);
  if (!failed) return null;
  const [covered] = await db
    .select({ seq: auditRoots.seq })
    .from(auditRoots)
    .where(sql`${auditRoots.treeSize} >= ${failed.seq}`)
    .limit(1);
  return covered ? null : { seq: failed.seq, at: failed.at, reason: String(failed.details.reason ?? 'unknown') };
}
