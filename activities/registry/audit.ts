/**
 * The audit chain: each entry carries the hash of the previous entry and of its own canonical JSON, and
 * appends are serialised by a transaction-scoped advisory lock so the chain never forks. An RFC 6962 Merkle
 * root over the entries is signed with the installation key and appended to a file outside the database,
 * so a rewrite by a database superuser (who can disable triggers and recompute every hash) is still found.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asc, gt, sql } from 'drizzle-orm';
import { AUDIT_GENESIS_HASH, auditLog } from '../../schemas/db/index.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';
import { LOCKS, prepared, type Database } from './db.ts';
import { AUDIT_ROOT_PAYLOAD_TYPE, signEnvelope, verifyEnvelope, type Keys, type Verifier } from './signing.ts';

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

/** The bytes an entry's `hash` covers: every field but the hash itself, canonically. */
export function entryBody(e: Omit<AuditEntry, 'hash'>): string {
  return canonicalJson({
    seq: e.seq,
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    subject: e.subject,
    details: e.details,
    prevHash: e.prevHash,
  });
}

/** The bytes of an entry as a Merkle leaf: the whole entry, hash included. */
export function entryLeaf(e: AuditEntry): string {
  return canonicalJson({
    seq: e.seq,
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    subject: e.subject,
    details: e.details,
    prevHash: e.prevHash,
    hash: e.hash,
  });
}

// The chain's lock and a read of its head, as one simple-protocol query (see appendAuditEntry).
const LOCK_AND_READ_HEAD =
  `select pg_advisory_xact_lock(${LOCKS.audit[0]}, ${LOCKS.audit[1]}); ` +
  `select seq::text as head_seq, hash from audit_log order by audit_log.seq desc limit 1`;

/**
 * Appends an entry inside `tx`. Call it last in the transaction: it takes the chain's lock, which is then
 * held only until commit, and a transaction that rolls back takes its entry with it.
 */
export async function appendAuditEntry(tx: Tx, input: AuditInput): Promise<AuditEntry> {
  canonicalJson(input.details); // refuse what cannot be hashed before taking the lock
  // Lock, then read the head, in one round trip: the two statements of a simple query run in order, and
  // the second takes its snapshot after the lock is held, so it sees the entry of whoever held it before.
  const results = (await tx.execute(sql.raw(LOCK_AND_READ_HEAD))) as unknown as { head_seq: string; hash: string }[][];
  const last = results[1]?.[0];
  const partial = {
    seq: (last ? Number(last.head_seq) : 0) + 1,
    at: new Date(),
    actor: input.actor,
    action: input.action,
    subject: input.subject,
    details: input.details,
    prevHash: last?.hash ?? AUDIT_GENESIS_HASH,
  };
  const entry: AuditEntry = { ...partial, hash: sha256Hex(entryBody(partial)) };
  await prepared(tx.insert(auditLog).values(entry));
  return entry;
}

// RFC 6962 section 2.1: domain-separated leaf and node hashes.
function leafHash(bytes: string): Buffer {
  return createHash('sha256')
    .update(Buffer.from([0]))
    .update(bytes, 'utf8')
    .digest();
}
function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.from([1]))
    .update(left)
    .update(right)
    .digest();
}

/**
 * Merkle tree hashes of every prefix of a list of leaves, RFC 6962 style. Perfect subtrees are hashed once
 * (levels[j][i] covers leaves i*2^j .. (i+1)*2^j - 1), so the root of any prefix costs O(log n).
 */
export class MerkleTree {
  readonly #levels: Buffer[][] = [[]];

  /** Adds the next leaf (the entry's bytes, before the 0x00 prefix). */
  push(entryBytes: string): void {
    let node = leafHash(entryBytes);
    let j = 0;
    this.#levels[0]!.push(node);
    // Complete every perfect subtree this leaf closes.
    while (this.#levels[j]!.length % 2 === 0) {
      const level = this.#levels[j]!;
      node = nodeHash(level[level.length - 2]!, level[level.length - 1]!);
      j += 1;
      (this.#levels[j] ??= []).push(node);
    }
  }

  get size(): number {
    return this.#levels[0]!.length;
  }

  /** MTH(D[0:n]) for n <= size, as hex; the empty tree hashes to sha256(""). */
  root(n: number = this.size): string {
    if (n < 0 || n > this.size) throw new RangeError(`tree has ${this.size} leaves, asked for ${n}`);
    if (n === 0) return sha256Hex('');
    // n's binary digits, high to low, are the perfect subtrees left to right; fold them from the right.
    const parts: Buffer[] = [];
    let start = 0;
    for (let j = Math.floor(Math.log2(n)); j >= 0; j--) {
      if (n & (2 ** j)) {
        parts.push(this.#levels[j]![start / 2 ** j]!);
        start += 2 ** j;
      }
    }
    let acc = parts[parts.length - 1]!;
    for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
    return acc.toString('hex');
  }
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
  /** `chain`: an entry no longer matches its hash or predecessor; `root`: a signed root no longer matches; `roots-file`: a root line is unreadable or unsigned. */
  kind: 'chain' | 'root' | 'roots-file';
  reason: string;
}

/** The result of verifying the audit log. */
export interface AuditVerification {
  ok: boolean;
  entries: number;
  /** Signed roots checked against the log. */
  roots: number;
  firstBad?: AuditProblem;
  problems: AuditProblem[];
}

const BATCH = 5000;

/** Reads the whole log in seq order, checking the chain, and builds its Merkle tree. */
async function scanChain(db: Database | Tx): Promise<{ tree: MerkleTree; hashes: string[]; problems: AuditProblem[] }> {
  const tree = new MerkleTree();
  const hashes: string[] = [];
  const problems: AuditProblem[] = [];
  let prevHash = AUDIT_GENESIS_HASH;
  let expected = 1;
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
      tree.push(entryLeaf(row));
      hashes.push(row.hash);
      prevHash = row.hash;
      expected += 1;
    }
    if (rows.length < BATCH) break;
  }
  return { tree, hashes, problems };
}

/** Reads the signed roots file; a missing file is no roots. */
async function readRoots(auditDir: string): Promise<string[]> {
  try {
    return (await readFile(join(auditDir, ROOTS_FILE), 'utf8')).split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Recomputes the chain and checks every signed root against it. Names the first entry that breaks: exactly,
 * when an entry no longer matches its hash or its predecessor; as "at or after", when the chain was rewritten
 * consistently and only a signed root betrays it.
 */
export async function verifyAuditLog(db: Database | Tx, auditDir: string, trusted: readonly Verifier[]): Promise<AuditVerification> {
  return (await verifyWithTree(db, auditDir, trusted)).verification;
}

async function verifyWithTree(
  db: Database | Tx,
  auditDir: string,
  trusted: readonly Verifier[],
): Promise<{ verification: AuditVerification; tree: MerkleTree; hashes: string[] }> {
  const { tree, hashes, problems } = await scanChain(db);
  const n = tree.size;
  const lines = await readRoots(auditDir);
  const signed: { line: number; root: AuditRoot }[] = [];
  lines.forEach((text, i) => {
    const where = `${ROOTS_FILE} line ${i + 1}`;
    let envelope: unknown;
    try {
      envelope = JSON.parse(text);
    } catch {
      problems.push({ seq: null, kind: 'roots-file', reason: `${where} is not JSON` });
      return;
    }
    const check = verifyEnvelope(envelope, AUDIT_ROOT_PAYLOAD_TYPE, trusted);
    if (!check.ok) {
      problems.push({ seq: null, kind: 'roots-file', reason: `${where}: ${check.reason}` });
      return;
    }
    const root = JSON.parse(check.payload.toString('utf8')) as AuditRoot;
    if (!Number.isSafeInteger(root.treeSize) || root.treeSize < 0 || typeof root.rootHash !== 'string') {
      problems.push({ seq: null, kind: 'roots-file', reason: `${where}: malformed root` });
      return;
    }
    signed.push({ line: i + 1, root });
  });

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

  // An exact chain break beats a range from the roots; otherwise the lowest entry named.
  const chainBreak = problems.find((p) => p.kind === 'chain');
  const byEntry = problems.filter((p) => p.seq !== null).sort((a, b) => a.seq! - b.seq!);
  const firstBad = chainBreak ?? byEntry[0] ?? problems[0];
  const verification = { ok: problems.length === 0, entries: n, roots: signed.length, ...(firstBad ? { firstBad } : {}), problems };
  return { verification, tree, hashes };
}

/** The result of an export: what was signed and where it went. */
export interface ExportedRoot {
  root: AuditRoot;
  file: string;
}

/**
 * Verifies the log, then signs its current Merkle root and appends it to `<auditDir>/roots.jsonl` (fsynced).
 * Refuses to sign a log that fails verification, so a tampered log is never laundered by a fresh signature.
 */
export async function exportAuditRoot(db: Database, auditDir: string, keys: Keys, trusted: readonly Verifier[]): Promise<ExportedRoot> {
  // One snapshot (the scan pages through the log) so the tree we check is the tree we sign.
  const { verification, tree, hashes } = await db.transaction((tx) => verifyWithTree(tx, auditDir, trusted), {
    isolationLevel: 'repeatable read',
    accessMode: 'read only',
  });
  if (!verification.ok) throw new Error(`refusing to sign the audit root: ${verification.firstBad?.reason ?? 'verification failed'}`);
  const root: AuditRoot = {
    _type: 'perennial.audit-root/v1',
    treeSize: tree.size,
    rootHash: tree.root(),
    lastHash: hashes[tree.size - 1] ?? AUDIT_GENESIS_HASH,
    exportedAt: new Date().toISOString(),
    keyId: keys.keyId,
  };
  const envelope = signEnvelope(keys, AUDIT_ROOT_PAYLOAD_TYPE, Buffer.from(canonicalJson(root), 'utf8'));
  await mkdir(auditDir, { recursive: true, mode: 0o755 });
  const file = join(auditDir, ROOTS_FILE);
  // One write with O_APPEND: concurrent exporters add whole lines, never interleave or overwrite.
  const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  try {
    await handle.write(canonicalJson(envelope) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { root, file };
}
