/**
 * Ingest: read a drop file, check it is the content that was signalled, validate every record, store it
 * content-addressed, record it, and register its suites. Bad input is kept in quarantine with its reason
 * and recorded, then reported as a non-retryable InvalidDataError naming the file and the line.
 *
 * The request is validated here (zod) because a `dataDrop` signal can come from any Temporal client, not only
 * the CLI; the file must lie in a configured drop root (PERENNIAL_DROP_ROOTS: a client of the unauthenticated
 * local dev server can name any path) and is opened without blocking and must be a regular file of at most
 * MAX_DROP_BYTES outside the installation's own folders (keys, store, database), so no request can make a
 * worker hang, exhaust its memory, write outside quarantine/, read a file of the worker's user outside the
 * roots, or train on (or copy) the signing key. What ingest keeps in quarantine is its owner's alone (0700/0600).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readlink, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { basename, delimiter, join, resolve, sep } from 'node:path';
import { DropRequest, type GateRules, SourceName, explain } from '../schemas/io.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { DropFormatError, MAX_DROP_BYTES, parseDrop, sha256Hex } from '../domain/drops.ts';
import { parseFeedback } from '../domain/feedback.ts';
import { hasIndependentGold } from '../domain/verifiers.ts';
import type { ActivityDeps } from './deps.ts';
import { recipeLimitProblems } from './limits.ts';
import type { FeedbackCounts } from '../domain/recipe-limits.ts';
import { suitesOfDrop } from '../domain/suites.ts';
import type { IngestResult, SuiteRef } from './types.ts';

export interface QuarantineRecord {
  line: string;
  digest: string;
  file: string;
  reason: string;
  at: string;
}

/** The most a reason may be: it is recorded in the registry (4000 characters) and shown in the UI. */
const MAX_REASON = 3000;
const DIGEST = /^[0-9a-f]{64}$/;

/** Where a drop goes: its line, and the cycle's ingest key (one per cycle and drop). */
interface Target {
  line: string;
  key: string;
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * The installation's own folders under `dataDir` (and the keys folder where PERENNIAL_KEYS_DIR moves it):
 * a drop is never read from them.
 */
export function protectedFolders(dataDir: string, env: NodeJS.ProcessEnv = process.env): { name: string; path: string }[] {
  const root = resolve(dataDir);
  return [
    { name: 'keys', path: resolve(env.PERENNIAL_KEYS_DIR ?? join(root, 'keys')) },
    ...['artifacts', 'quarantine', 'audit', 'postgres', 'temporal', 'run', 'logs'].map((name) => ({ name, path: join(root, name) })),
  ];
}

/**
 * The folders drops may be read from: PERENNIAL_DROP_ROOTS (separated by `:`, `;` on Windows), else
 * `<data>/drops` and `<data>/demo-drops` (the demo's). Not the system's temporary folder: anyone on the machine
 * can write there, so a drop there could be a link swapped in by another user. Read on every drop, so a
 * worker's environment decides.
 */
export function dropRoots(dataDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const listed = (env.PERENNIAL_DROP_ROOTS ?? '')
    .split(delimiter)
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (listed.length > 0) return listed.map((p) => resolve(p));
  const root = resolve(dataDir);
  return [join(root, 'drops'), join(root, 'demo-drops')];
}

const isInside = (p: string, folder: string) => p === folder || p.startsWith(folder.endsWith(sep) ? folder : folder + sep);

/**
 * The bytes of a drop file, or why they cannot be read; never blocks on a pipe or reads past MAX_DROP_BYTES.
 *
 * The file is opened once, by the name given, without following a link in its last part (O_NOFOLLOW), and what
 * was opened is what is checked and read: its real path (from /proc/self/fd where there is one) must lie in a
 * root and outside the installation's folders, and be the same file (device and inode) as the descriptor. A
 * check on the name followed by a second open could be raced by swapping in a link between the two.
 */
export async function readDropFile(path: string, dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<{ bytes: Uint8Array } | { problem: string }> {
  const roots = dropRoots(dataDir, env);
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => r)));
  const outside = {
    problem: `the path is outside the drop roots (${roots.join(', ')}); drops are read only from there: move the file into one, or add its folder to PERENNIAL_DROP_ROOTS where the workers run`,
  };
  /** Why a file whose real path is `real` may not be read, if it may not. */
  const refusal = async (real: string): Promise<{ problem: string } | undefined> => {
    if (!realRoots.some((r) => isInside(real, r))) return outside;
    for (const folder of protectedFolders(dataDir, env)) {
      const resolved = await realpath(folder.path).catch(() => folder.path);
      if (isInside(real, folder.path) || isInside(real, resolved) || isInside(resolve(path), folder.path))
        return { problem: `the path is inside the installation's ${folder.name} folder; drops are read from elsewhere` };
    }
    return undefined;
  };
  // Checked on the name first, so a path outside is not even opened (no probing which files exist there).
  if (![...roots, ...realRoots].some((r) => isInside(resolve(path), r))) return outside;
  let handle;
  try {
    // O_NONBLOCK: opening a named pipe must not wait for a writer; regular files are unaffected.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') return linkProblem(path, refusal);
    return { problem: fileProblem(err) };
  }
  try {
    const st = await handle.stat();
    // The real path of what was opened: a link swapped in for a folder of the path led the open elsewhere.
    const real = await openedPath(handle.fd, path);
    if (real === undefined) return { problem: 'the file was moved or replaced while it was opened; send it again' };
    const refused = await refusal(real);
    if (refused) return refused;
    // A hard link to the signing key has a path of its own; it is the same file all the same.
    if (await isKeyFile(st, dataDir, env)) return { problem: "the file is the installation's signing key; drops are read from elsewhere" };
    if (st.isDirectory()) return { problem: 'the path is a folder, not a file' };
    if (!st.isFile()) return { problem: 'the path is not a regular file (a device, pipe or socket)' };
    // The real path must still name the opened file (where /proc is missing, it is all the check there is).
    const named = await stat(real).catch(() => undefined);
    if (!named || named.dev !== st.dev || named.ino !== st.ino) return { problem: 'the file was moved or replaced while it was opened; send it again' };
    if (st.size > MAX_DROP_BYTES) return { problem: `the file is ${st.size} bytes, over the ${MAX_DROP_BYTES}-byte limit` };
    // Read what is there now, up to one byte past the limit (a file that grows while it is read is caught).
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(1 << 20, MAX_DROP_BYTES + 1 - total);
      if (want <= 0) break;
      const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, null);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > MAX_DROP_BYTES) return { problem: `the file grew past the ${MAX_DROP_BYTES}-byte limit while it was read` };
    return { bytes: Buffer.concat(chunks, total) };
  } catch (err) {
    return { problem: fileProblem(err) };
  } finally {
    await handle.close();
  }
}

/**
 * The real path of an open descriptor: /proc/self/fd/N's target on Linux, else the name's real path (then only
 * the device and inode check ties it to the descriptor). Undefined when the file was deleted after the open.
 */
async function openedPath(fd: number, path: string): Promise<string | undefined> {
  const viaProc = await readlink(`/proc/self/fd/${fd}`).catch(() => undefined);
  if (viaProc !== undefined) return viaProc.endsWith(' (deleted)') || !viaProc.startsWith(sep) ? undefined : viaProc;
  return realpath(path).catch(() => undefined);
}

/**
 * Why a path whose last part is a symbolic link is refused: nothing is read through a link. Where it leads
 * (outside the roots, into the keys folder) is named when that is the better reason.
 */
async function linkProblem(path: string, refusal: (real: string) => Promise<{ problem: string } | undefined>): Promise<{ problem: string }> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    return { problem: fileProblem(err) };
  }
  return (await refusal(real)) ?? { problem: "the path is a symbolic link; drops are not read through links: send the file's own path" };
}

async function isKeyFile(st: { dev: number; ino: number }, dataDir: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const keys = protectedFolders(dataDir, env)[0]!.path;
  const names = await readdir(keys).catch(() => [] as string[]);
  for (const name of names) {
    const k = await lstat(join(keys, name)).catch(() => undefined);
    if (k?.isFile() && k.dev === st.dev && k.ino === st.ino) return true;
  }
  return false;
}

function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'the file does not exist';
  if (code === 'EISDIR') return 'the path is a folder, not a file';
  if (code === 'ENOTDIR') return 'a part of the path is not a folder';
  if (code === 'ELOOP') return 'the path is a loop of symbolic links';
  if (code === 'EACCES' || code === 'EPERM') return `the file cannot be read (${code}: permission denied)`;
  return `the file cannot be read (${code ?? (err as Error).message})`;
}

export function ingestActivities(deps: ActivityDeps) {
  const quarantineRoot = join(deps.dataDir, 'quarantine');

  /** Keeps the bytes (when there are any) and the reason under quarantine/<digest>/. Idempotent. */
  async function quarantine(record: QuarantineRecord, bytes: Uint8Array | undefined): Promise<string> {
    // The digest is checked (or computed) before it gets here; this is the last guard before it names a folder.
    if (!DIGEST.test(record.digest)) throw new Error(`refusing to quarantine under ${JSON.stringify(record.digest.slice(0, 80))}`);
    const dir = join(quarantineRoot, record.digest);
    // Quarantined bytes are drop data, and may be anyone's: the owner's alone.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(quarantineRoot, 0o700);
    await chmod(dir, 0o700);
    if (bytes) await atomicWrite(join(dir, 'content'), bytes);
    await atomicWrite(join(dir, 'reason.json'), Buffer.from(JSON.stringify(record, null, 2) + '\n'));
    return dir;
  }

  /** `to`: the line and the cycle's ingest key, recorded with the quarantined drop so that a retry of this attempt says the same. */
  async function reject(to: Target, req: DropRequest, digest: string, bytes: Uint8Array | undefined, why: string): Promise<never> {
    const { line } = to;
    const reason = clip(why, MAX_REASON);
    const dir = await quarantine({ line, digest, file: req.path, reason, at: new Date().toISOString() }, bytes);
    await deps.registry.recordDrop({
      line,
      digest,
      source: req.source,
      status: 'quarantined',
      counts: { records: 0, train: 0, heldOut: 0, probes: 0 },
      reason,
      storedPath: dir,
      ingestKey: to.key,
    });
    return quarantined(line, digest, req.path, reason, dir);
  }

  function quarantined(line: string, digest: string, file: string, reason: string, dir: string): never {
    throw ApplicationFailure.nonRetryable(reason, ErrorType.InvalidData, { line, digest, file, quarantine: dir });
  }

  const acts = {
    /** Ingests one drop for `line`: validate, store, record, register suites. Idempotent by (line, digest). */
    async ingestDrop(input: { line: string; request: DropRequest; key: string }): Promise<IngestResult> {
      const { line } = input;
      const to: Target = { line, key: input.key };
      const checked = DropRequest.safeParse(input.request);
      if (!checked.success) return rejectRequest(to, input.request, explain(checked.error));
      const request = checked.data;
      const previous = await deps.registry.getDrop(line, request.digest);
      if (previous) {
        if (previous.status === 'accepted' && previous.ingestKey === input.key)
          return request.kind === 'feedback' ? feedbackAccepted(request.digest, previous.counts) : accepted(line, request, previous);
        // A drop whose cycle failed was never judged: sent again, it is accepted anew (its file was checked then).
        if (previous.status === 'failed') {
          await refuseOverLimit(to, request);
          const again = await deps.registry.reacceptDrop(line, request.digest, input.key);
          return request.kind === 'feedback' ? feedbackAccepted(request.digest, again.counts) : accepted(line, request, again);
        }
        // This cycle's earlier attempt quarantined it and died before saying so: the retry says it.
        if (previous.status === 'quarantined' && previous.ingestKey === input.key)
          return quarantined(line, request.digest, request.path, previous.reason ?? 'quarantined', previous.storedPath);
        return { status: 'duplicate', digest: request.digest, previousStatus: previous.status };
      }
      await refuseOverLimit(to, request);
      const read = await readDropFile(request.path, deps.dataDir);
      if ('problem' in read) return reject(to, request, request.digest, undefined, `${request.path}: ${read.problem}`);
      const { bytes } = read;
      const digest = sha256Hex(bytes);
      if (digest !== request.digest) {
        return reject(
          to,
          request,
          request.digest,
          bytes,
          `${request.path}: the file changed after it was sent (sent ${request.digest.slice(0, 12)}, read ${digest.slice(0, 12)}); send it again`,
        );
      }
      if (request.kind === 'feedback') return ingestFeedback(to, request, digest, bytes);
      let parsed;
      try {
        parsed = parseDrop(bytes, request.path);
      } catch (err) {
        if (err instanceof DropFormatError) return reject(to, request, digest, bytes, err.message);
        throw err;
      }
      // A cycle trains on the drop: one with nothing to train on (only held-out text or probes) is refused here,
      // with the reason, rather than accepted and then failing its cycle at the adapt step.
      if (parsed.train.length === 0)
        return reject(
          to,
          request,
          digest,
          bytes,
          `${request.path}: the file holds no training records (${parsed.heldOut.length} held out, ${parsed.probes.length} probes); add text records ({"text": ...}) to train on`,
        );
      const stored = await deps.store.put(bytes);
      const suites = suitesOfDrop(line, request.source, digest, parsed);
      await deps.registry.recordDrop({
        line,
        digest,
        source: request.source,
        status: 'accepted',
        counts: {
          records: parsed.train.length + parsed.heldOut.length + parsed.probes.length,
          train: parsed.train.length,
          heldOut: parsed.heldOut.length,
          probes: parsed.probes.length,
        },
        storedPath: deps.store.pathOf(stored),
        ingestKey: input.key,
      });
      await registerSuites(line, digest, suites);
      return { status: 'accepted', digest, counts: { train: parsed.train.length, heldOut: parsed.heldOut.length, probes: parsed.probes.length }, suites };
    },

    /** Stores a regression report's evidence file and returns the suites it defines (not added to the line). */
    async ingestEvidence(input: { line: string; path: string; digest: string }): Promise<SuiteRef[]> {
      const read = await readDropFile(input.path, deps.dataDir);
      if ('problem' in read) throw ApplicationFailure.nonRetryable(`${input.path}: evidence cannot be read (${read.problem})`, ErrorType.InvalidData);
      const { bytes } = read;
      if (sha256Hex(bytes) !== input.digest)
        throw ApplicationFailure.nonRetryable(`${input.path}: the evidence changed after it was sent`, ErrorType.InvalidData);
      let parsed;
      try {
        parsed = parseDrop(bytes, input.path);
      } catch (err) {
        if (err instanceof DropFormatError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidData);
        throw err;
      }
      await deps.store.put(bytes);
      // Evidence is evaluated whole: its text is all held out, it trains nothing.
      const all = { ...parsed, heldOut: [...parsed.heldOut, ...parsed.train], train: [] };
      const suites = suitesOfDrop(
        input.line,
        `report-${basename(input.path)
          .replace(/\.[^.]*$/, '')
          .replace(/[^A-Za-z0-9._-]+/g, '-')}`,
        input.digest,
        all,
      ).map((s) => ({
        ...s,
        evidence: true,
      }));
      // Registered so results can be recorded; with no drop behind them they never join the line's gate.
      for (const s of suites) await deps.registry.ensureSuite({ line: input.line, name: s.name, kind: s.kind, dataDigest: input.digest });
      return suites;
    },
  };
  // Heartbeats while they run, so a retry starts within the heartbeat timeout when their worker dies.
  return {
    ingestDrop: (input: Parameters<typeof acts.ingestDrop>[0]) => withHeartbeat(() => acts.ingestDrop(input)),
    ingestEvidence: (input: Parameters<typeof acts.ingestEvidence>[0]) => withHeartbeat(() => acts.ingestEvidence(input)),
  };

  /**
   * A drop whose recipe override asks for more than its line's limits is refused before its file is read, naming
   * the drop and each limit, non-retryable (RecipeLimitError): its cycle ends with that reason instead of training
   * and failing on every retry. The request and reason are kept in quarantine; the drop is not recorded, so the
   * same file may be sent again with a recipe within the limits. A feedback drop's RL update is checked too: before
   * its file is read on its fields, after with `counts` (its held-out checks' cost).
   */
  async function refuseOverLimit(to: Target, request: DropRequest, counts?: FeedbackCounts): Promise<void> {
    if (!request.recipe) return;
    const feedback = request.kind === 'feedback' ? { ...(counts ? { counts } : {}) } : undefined;
    const problems = await recipeLimitProblems(deps, to.line, request.recipe, feedback);
    if (!problems.length) return;
    const reason = clip(
      `drop ${request.digest.slice(0, 12)} (${request.source}): its recipe is outside line ${to.line}'s limits: ${problems.join('; ')}`,
      MAX_REASON,
    );
    const dir = await quarantine({ line: to.line, digest: request.digest, file: request.path, reason, at: new Date().toISOString() }, undefined);
    throw ApplicationFailure.nonRetryable(reason, ErrorType.RecipeLimit, { line: to.line, digest: request.digest, file: request.path, quarantine: dir });
  }

  /**
   * A request that fails validation (a client other than the CLI signalled it): quarantined with the reason
   * under its own digest when it carries a valid one, else under the digest of the request itself; the file
   * it names is not read.
   */
  function rejectRequest(to: Target, raw: unknown, problem: string): Promise<never> {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const digest = typeof r.digest === 'string' && DIGEST.test(r.digest) ? r.digest : sha256Hex(safeJson(raw));
    const path = typeof r.path === 'string' ? clip(r.path, 500) : '(no path)';
    const source = SourceName.safeParse(r.source).success ? (r.source as string) : 'invalid-request';
    return reject(to, { path, digest, source }, digest, undefined, `drop request for ${path} is invalid: ${problem}`);
  }

  /**
   * A feedback drop (`perennial feedback`): records parsed by domain/feedback.ts (a bad one quarantines the file
   * with its line, as a data drop's does), stored and recorded like a drop; it defines no suites. Counted as
   * train = training ratings and prompts, heldOut = the held-out ones the RL guards check.
   */
  async function ingestFeedback(to: Target, request: DropRequest, digest: string, bytes: Uint8Array): Promise<IngestResult> {
    const { line, key } = to;
    let fb;
    try {
      fb = parseFeedback(bytes, request.path);
    } catch (err) {
      if (err instanceof DropFormatError) return reject(to, request, digest, bytes, err.message);
      throw err;
    }
    const train = fb.ratings.length + fb.prompts.length;
    const heldOut = fb.heldOutRatings.length + fb.heldOutPrompts.length;
    // The RL guards check fresh greedy answers, which only a verifier can score: a held-out verifier prompt is needed.
    if (fb.prompts.length + fb.ratings.length === 0 || fb.heldOutPrompts.length === 0)
      return reject(
        to,
        request,
        digest,
        bytes,
        `${request.path}: feedback needs records to train on and held-out verifier prompts for the guards (${train} to train, ${fb.heldOutPrompts.length} held-out verifier prompts); send at least two verifier prompts`,
      );
    // Without a gold of its own a prompt's gold is its reward, and the reward-hacking guard cannot fire: only a line
    // that says so takes such feedback (its RL run is then recorded as having no gold check).
    const prompts = [...fb.prompts, ...fb.heldOutPrompts];
    const withoutGold = prompts.filter((p) => !hasIndependentGold(p)).length;
    if (withoutGold > 0 && ((await deps.registry.getLine(line)).gateRules as GateRules).allowFeedbackWithoutGold !== true)
      return reject(
        to,
        request,
        digest,
        bytes,
        `${request.path}: ${withoutGold} of ${prompts.length} verifier prompts have no gold of their own, so the reward-hacking guard could not fire; ` +
          `give each a "gold" (a stricter check than its verifier), or allow it on line ${line} with gate rule allowFeedbackWithoutGold (perennial line gate ${line} '{"allowFeedbackWithoutGold":true}')`,
      );
    const counts = { prompts: fb.prompts.length, ratings: fb.ratings.length, heldOutPrompts: fb.heldOutPrompts.length, heldOutRatings: fb.heldOutRatings.length };
    await refuseOverLimit(to, request, counts);
    const stored = await deps.store.put(bytes);
    await deps.registry.recordDrop({
      line,
      digest,
      source: request.source,
      status: 'accepted',
      counts: { records: train + heldOut, train, heldOut, probes: 0 },
      storedPath: deps.store.pathOf(stored),
      ingestKey: key,
    });
    return feedbackAccepted(digest, { train, heldOut, probes: 0 });
  }

  function feedbackAccepted(digest: string, counts: { train: number; heldOut: number; probes: number }): IngestResult {
    return { status: 'accepted', digest, counts: { train: counts.train, heldOut: counts.heldOut, probes: counts.probes }, suites: [] };
  }

  /** A drop's suites, each idempotent by (line, name). */
  async function registerSuites(line: string, digest: string, suites: SuiteRef[]): Promise<void> {
    for (const s of suites) await deps.registry.ensureSuite({ line, name: s.name, kind: s.kind, dataDigest: digest, dropDigest: digest });
  }

  /**
   * A drop recorded as accepted before (this cycle's earlier attempt, or a failed cycle's): its suites are
   * registered again, idempotently, because an attempt whose worker died between recording the drop and
   * registering its suites left them missing, and the cycle's evaluation would then find no suite to record.
   */
  async function accepted(
    line: string,
    request: DropRequest,
    row: { source: string; counts: { train: number; heldOut: number; probes: number } },
  ): Promise<IngestResult> {
    // Named by the source the drop was recorded under: a failed drop sent again under another name keeps its suites.
    const suites = suitesOfDrop(line, row.source, request.digest, await deps.drops.get(request.digest));
    await registerSuites(line, request.digest, suites);
    return {
      status: 'accepted',
      digest: request.digest,
      counts: { train: row.counts.train, heldOut: row.counts.heldOut, probes: row.counts.probes },
      suites,
    };
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

async function atomicWrite(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes, { flush: true, mode: 0o600 });
  await chmod(tmp, 0o600); // a temp file left by a crash keeps its old mode; writeFile's mode applies only on create
  await rename(tmp, path);
}

/**
 * Runs `fn` heartbeating every 5 s when it runs as an activity (and plainly when called directly, as the
 * chaos suite's fuzzing does), so a worker that dies in the middle is noticed within the heartbeat timeout.
 */
async function withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return fn();
  }
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), 5_000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
