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
import { chmod, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asc, desc, gt, sql } from 'drizzle-orm';
import { AUDIT_GENESIS_HASH, auditLog, auditRoots } from '../schemas/db/index.ts';
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

  /** The roots of the perfect subtrees of the first n leaves, largest first (the frontier), as hex. */
  subtrees(n: number = this.size): string[] {
    return this.#parts(n).map((p) => p.toString('hex'));
  }

  #parts(n: number): Buffer[] {
    if (n < 0 || n > this.size) throw new RangeError(`tree has ${this.size} leaves, asked for ${n}`);
    // n's binary digits, high to low, are the perfect subtrees left to right.
    const parts: Buffer[] = [];
    let start = 0;
    for (let j = n === 0 ? -1 : Math.floor(Math.log2(n)); j >= 0; j--) {
      if (n & (2 ** j)) {
        parts.push(this.#levels[j]![start / 2 ** j]!);
        start += 2 ** j;
      }
    }
    return parts;
  }

  /** MTH(D[0:n]) for n <= size, as hex; the empty tree hashes to sha256(""). */
  root(n: number = this.size): string {
    const parts = this.#parts(n);
    if (n === 0) return sha256Hex('');
    // Fold the perfect subtrees from the right.
    let acc = parts[parts.length - 1]!;
    for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
    return acc.toString('hex');
  }
}

/**
 * The frontier of an RFC 6962 tree: the roots of its perfect subtrees, largest first (one per set bit of the
 * size). It is all a seal needs to extend the tree by the entries since: O(log n) state, O(1) amortised per leaf.
 */
export class MerkleFrontier {
  #size: number;
  readonly #nodes: Buffer[];

  constructor(size = 0, nodes: readonly string[] = []) {
    const bits = size.toString(2).replace(/0/g, '').length;
    if (!Number.isSafeInteger(size) || size < 0 || nodes.length !== bits || !nodes.every((n) => /^[0-9a-f]{64}$/.test(n)))
      throw new RangeError(`a frontier of ${size} leaves has ${bits} nodes of 64 hex digits, got ${nodes.length}`);
    this.#size = size;
    this.#nodes = nodes.map((n) => Buffer.from(n, 'hex'));
  }

  /** The frontier of the first `n` leaves of a full tree. */
  static of(tree: MerkleTree, n: number = tree.size): MerkleFrontier {
    return new MerkleFrontier(n, tree.subtrees(n));
  }

  get size(): number {
    return this.#size;
  }

  push(entryBytes: string): void {
    let node = leafHash(entryBytes);
    // Each trailing 1 bit of the size is a perfect subtree of the same height as `node`: merge them.
    for (let s = this.#size; s & 1; s = Math.floor(s / 2)) node = nodeHash(this.#nodes.pop()!, node);
    this.#nodes.push(node);
    this.#size += 1;
  }

  /** MTH of the leaves so far, as hex. */
  root(): string {
    if (this.#size === 0) return sha256Hex('');
    let acc = this.#nodes[this.#nodes.length - 1]!;
    for (let i = this.#nodes.length - 2; i >= 0; i--) acc = nodeHash(this.#nodes[i]!, acc);
    return acc.toString('hex');
  }

  nodes(): string[] {
    return this.#nodes.map((n) => n.toString('hex'));
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
  /** Roots the database records as signed; each must be in the roots file. */
  recordedRoots: number;
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

/** The signed roots file's lines; null when the file does not exist. */
async function readRoots(auditDir: string): Promise<string[] | null> {
  try {
    return (await readFile(join(auditDir, ROOTS_FILE), 'utf8')).split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
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
  const recorded = await db
    .select({ seq: auditRoots.seq, treeSize: auditRoots.treeSize, rootHash: auditRoots.rootHash })
    .from(auditRoots)
    .orderBy(asc(auditRoots.seq));
  const lines = await readRoots(auditDir);
  const tree = new MerkleTree();
  const hashes: string[] = [];
  const { problems } = await scanChain(db, { after: 0, prevHash: AUDIT_GENESIS_HASH }, (e) => {
    tree.push(entryLeaf(e));
    hashes.push(e.hash);
  });
  const n = tree.size;
  const signed: { line: number; root: AuditRoot }[] = [];
  (lines ?? []).forEach((text, i) => {
    const opened = openRoot(text, `${ROOTS_FILE} line ${i + 1}`, trusted);
    if ('problem' in opened) problems.push({ seq: null, kind: 'roots-file', reason: opened.problem });
    else signed.push({ line: i + 1, root: opened.root });
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

  // An exact chain break beats a range from the roots; otherwise the lowest entry named.
  const chainBreak = problems.find((p) => p.kind === 'chain');
  const byEntry = problems.filter((p) => p.seq !== null).sort((a, b) => a.seq! - b.seq!);
  const firstBad = chainBreak ?? byEntry[0] ?? problems[0];
  const verification = {
    ok: problems.length === 0,
    entries: n,
    roots: signed.length,
    recordedRoots: recorded.length,
    ...(firstBad ? { firstBad } : {}),
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
}

/**
 * Verifies the whole log (chain, signed roots, the database's record of them), then signs its current Merkle
 * root and appends it to `<auditDir>/roots.jsonl` (fsynced) and to the database with the tree's frontier.
 * Refuses to sign a log that fails verification, so a tampered log is never laundered by a fresh signature.
 * O(n): `perennial audit export` uses it; the loop seals with `sealAuditRoot`.
 */
export async function exportAuditRoot(db: Database, auditDir: string, keys: Keys, trusted: readonly Verifier[]): Promise<ExportedRoot> {
  return db.transaction(async (tx) => {
    await lockSeal(tx);
    // Read committed, after the lock: the scan pages through a prefix of the log (entries commit in seq order,
    // each under the chain's lock), and the tree it checks is the tree that is signed.
    const { verification, tree, hashes } = await verifyWithTree(tx, auditDir, trusted);
    if (!verification.ok) throw new Error(`refusing to sign the audit root: ${verification.firstBad?.reason ?? 'verification failed'}`);
    const [last] = await tx.select({ seq: auditRoots.seq }).from(auditRoots).orderBy(desc(auditRoots.seq)).limit(1);
    const frontier = MerkleFrontier.of(tree);
    return { ...(await signAndRecord(tx, auditDir, keys, frontier, hashes[tree.size - 1] ?? AUDIT_GENESIS_HASH, (last?.seq ?? 0) + 1)), hashed: tree.size };
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
  const refuse = (why: string) => new Error(`refusing to sign the audit root: ${why}`);
  const sealed = await db.transaction(async (tx) => {
    await lockSeal(tx);
    const [last] = await tx.select().from(auditRoots).orderBy(desc(auditRoots.seq)).limit(1);
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
    return { ...(await signAndRecord(tx, auditDir, keys, frontier, lastHash, last.seq + 1)), hashed: count };
  });
  return sealed ?? exportAuditRoot(db, auditDir, keys, trusted);
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
 * Signs the root of `frontier`, appends it to the roots file (fsynced), then records it in the database in the
 * caller's transaction. A crash between the two leaves a signed root in the file the database lacks, which
 * verification accepts; the other way round cannot happen.
 */
async function signAndRecord(
  tx: Tx,
  auditDir: string,
  keys: Keys,
  frontier: MerkleFrontier,
  lastHash: string,
  seq: number,
): Promise<Omit<ExportedRoot, 'hashed'>> {
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
    await handle.write(canonicalJson(envelope) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await tx.insert(auditRoots).values({
    seq,
    treeSize: root.treeSize,
    rootHash: root.rootHash,
    lastHash,
    frontier: frontier.nodes(),
    keyId: keys.keyId,
    signedAt: new Date(root.exportedAt),
  });
  return { root, file };
}
