/**
 * Fault injection on the real stack: an installation of its own (embedded PostgreSQL, a file-backed Temporal
 * dev server, worker *processes* started by scripts/stack/stack.ts) that a scenario can SIGKILL, stop and
 * restart piece by piece, and the checks that say what survived: every drop accounted for in the drop folder,
 * PostgreSQL and Temporal, no duplicate version, release or audit entry, the audit chain intact.
 *
 * Plain functions without vitest, so the stack tests (test/stack/chaos*.test.ts) and `npm run chaos`
 * (scripts/chaos.ts, the heavy versions with figures) run the same scenarios and the same checks.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import postgres from 'postgres';
import { PRESETS } from '../../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import type { DropRequest, LineSpec, Recipe } from '../../schemas/io.ts';
import { readCheckpoint } from '../../model/train.ts';
import { lineState, sendDrop } from '../../client/ops.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { startPostgres, type PostgresHandle } from '../stack/postgres.ts';
import { startStack, stopChild, type Stack, type WorkerProcess } from '../stack/stack.ts';
import { startTemporal, type TemporalHandle } from '../stack/temporal.ts';
import { freePort } from '../stack/wait.ts';
import { lineWorkflowId } from '../../schemas/contracts/ids.ts';
import type { CycleResult, CycleSummary, LineState } from '../../schemas/contracts/messages.ts';
import type { TrainingOutcome } from '../../activities/types.ts';
import { openRegistry } from '../../workers/wiring.ts';
import { FaultLedger } from './verdict.ts';

type WorkerKind = 'workflow' | 'training';

/** Test-sized training: the tiny model, a few dozen steps; scenarios override steps and checkpoints. */
export const CHAOS_RECIPE: Recipe = { ...DEFAULT_RECIPE, steps: 40, batchSize: 8, warmupSteps: 5, checkpointEvery: 20, learningRate: 5e-3 };

// The ledger and the run's verdict are pure code of their own (unit-tested); re-exported for the scenarios.
export { FAULT_KINDS, FaultLedger, type FaultKind } from './verdict.ts';

export interface ChaosStackOptions {
  /** Recognisable part of names (lines, queue, folder). */
  name: string;
  /** Parent folder of the installation's data folder (a temporary one when omitted, removed by close()). */
  baseDir?: string;
  /** Keep the temporary folder made when baseDir is omitted (`--keep`); a given baseDir is its caller's. */
  keep?: boolean;
  trainingWorkers?: number;
  /** Extra environment for the worker processes (NODE_OPTIONS for the network guard, say). */
  workerEnv?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface ChaosStack {
  name: string;
  /** The installation's data folder (PERENNIAL_DATA_DIR of the workers). */
  dataDir: string;
  /** Where scenarios write their drop files. */
  dropDir: string;
  taskQueue: string;
  namespace: string;
  temporalAddress: string;
  client: Client;
  registry: ReturnType<typeof openRegistry>['registry'];
  store: ReturnType<typeof openRegistry>['store'];
  /** The application role's URL (what the workers use). */
  appUrl: string;
  /** The owner's URL (migrations, checks that read everything). */
  adminUrl: string;
  ledger: FaultLedger;
  stack: Stack;
  /** Worker processes that are alive now. */
  live(kind?: WorkerKind): WorkerProcess[];
  /** Every worker process started, dead or alive. */
  all(): WorkerProcess[];
  spawn(kind: WorkerKind, n?: number): Promise<WorkerProcess[]>;
  /** Sends `signal` to the live workers of `kind` (or all) and waits until they have exited; returns their pids. */
  kill(kind: WorkerKind | 'all', signal?: NodeJS.Signals): Promise<number[]>;
  killTemporal(): Promise<void>;
  restartTemporal(): Promise<void>;
  stopPostgres(): Promise<void>;
  restartPostgres(): Promise<void>;
  temporalPid(): number | undefined;
  createLine(name: string, opts?: { recipe?: Partial<Recipe>; promotion?: Partial<LineSpec['promotion']> }): Promise<LineSpec>;
  /** Writes a JSONL drop of general text; returns its path. */
  writeDrop(name: string, seed: number, paragraphs?: number): string;
  /** Writes raw bytes as a drop file; returns its path. */
  writeRaw(name: string, bytes: Uint8Array | string): string;
  send(line: string, file: string, opts?: Parameters<typeof sendDrop>[3]): Promise<DropRequest>;
  close(): Promise<void>;
}

const alive = (w: WorkerProcess) => w.child.exitCode === null && w.child.signalCode === null;

/** A folder the embedded PostgreSQL (run as `postgres` when we are root) can reach. */
export function chaosBaseDir(prefix: string, parent = tmpdir()): string {
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, `${prefix}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/** Starts an installation of its own: PostgreSQL, a file-backed Temporal dev server, worker processes. */
export async function startChaosStack(opts: ChaosStackOptions): Promise<ChaosStack> {
  const log = opts.log ?? (() => {});
  const unique = `${opts.name}-${process.pid}-${Date.now().toString(36)}`;
  const base = opts.baseDir ?? chaosBaseDir('perennial-chaos');
  // A folder made here is removed here, when the stack closes or fails to start (58-66 MB a run otherwise).
  const removeOwnBase = () => {
    if (opts.baseDir === undefined && !opts.keep) rmSync(base, { recursive: true, force: true });
  };
  chmodSync(base, 0o755);
  const dataDir = join(base, unique);
  const dropDir = join(dataDir, 'drops');
  // The workers must reach only what we give them: no inherited DATABASE_URL, TEMPORAL_ADDRESS or queue.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('PERENNIAL_') || k.startsWith('TEMPORAL_') || k.startsWith('DATABASE_') || k === 'NODE_OPTIONS') delete env[k];
  Object.assign(env, opts.workerEnv ?? {});
  const [temporalPort, uiPort, postgresPort] = [await freePort(), await freePort(), await freePort()];
  const taskQueue = `chaos-${unique}`;
  const namespace = 'default';
  let stack: Stack;
  try {
    stack = await startStack({
      dataDir,
      temporalPort,
      uiPort,
      postgresPort,
      namespace,
      taskQueue,
      trainingWorkers: opts.trainingWorkers ?? 1,
      headless: true,
      log,
      env,
      supervise: false,
    });
  } catch (err) {
    removeOwnBase();
    throw err;
  }
  mkdirSync(dropDir, { recursive: true });
  let temporal: TemporalHandle | undefined = stack.temporal;
  let pg: PostgresHandle | undefined = stack.postgres;
  const adminUrl = pg!.adminUrl;
  const temporalAddress = stack.state.temporal.address;
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: temporalAddress });
  } catch (err) {
    await stack.stop().catch(() => {});
    removeOwnBase();
    throw err;
  }
  const client = new Client({ connection, namespace });
  const installation = openRegistry(stack.state.database.url, dataDir);
  const spawned: WorkerProcess[] = [...stack.workers];

  const s: ChaosStack = {
    name: opts.name,
    dataDir,
    dropDir,
    taskQueue,
    namespace,
    temporalAddress,
    client,
    registry: installation.registry,
    store: installation.store,
    appUrl: stack.state.database.url,
    adminUrl,
    ledger: new FaultLedger(),
    stack,
    live: (kind) => spawned.filter((w) => alive(w) && (kind === undefined || w.kind === kind)),
    all: () => [...spawned],
    async spawn(kind, n = 1) {
      const started = Array.from({ length: n }, () => stack.spawnWorker(kind));
      spawned.push(...started);
      await Promise.all(started.map((w) => w.ready));
      return started;
    },
    async kill(kind, signal = 'SIGKILL') {
      const victims = s.live(kind === 'all' ? undefined : kind);
      await Promise.all(
        victims.map(
          (w) =>
            new Promise<void>((ok) => {
              if (!alive(w)) return ok();
              w.child.once('exit', () => ok());
              w.child.kill(signal);
            }),
        ),
      );
      return victims.map((w) => w.child.pid!);
    },
    async killTemporal() {
      const child = temporal?.process;
      if (!child) throw new Error('this Temporal dev server was started by the SDK; its process cannot be killed (install the Temporal CLI)');
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((ok) => {
          child.once('exit', () => ok());
          child.kill('SIGKILL');
        });
      }
    },
    async restartTemporal() {
      const dir = join(dataDir, 'temporal');
      temporal = await startTemporal({
        dbFile: join(dir, 'temporal.db'),
        port: temporalPort,
        namespace,
        headless: true,
        logFile: join(dir, 'server.log'),
      });
    },
    async stopPostgres() {
      await pg?.stop();
    },
    async restartPostgres() {
      pg = await startPostgres({ root: join(dataDir, 'postgres'), port: postgresPort });
      // This process's pooled connections from before the stop answer their next query with "terminating
      // connection due to administrator command" (57P01); let each pass that on before a scenario reads.
      for (let i = 0; i < 20; i++) await installation.registry.listLines().catch(() => undefined);
    },
    temporalPid: () => temporal?.process?.pid,
    async createLine(name, o = {}) {
      const spec: LineSpec = {
        name,
        kind: 'foundation',
        modelConfig: PRESETS.tiny,
        recipe: { ...CHAOS_RECIPE, ...o.recipe },
        gateRules: { ...DEFAULT_GATE_RULES },
        promotion: { ...DEFAULT_PROMOTION, ...o.promotion },
      };
      await installation.registry.ensureLine({ ...spec, foundationLine: undefined, actor: 'chaos' });
      return spec;
    },
    writeDrop(name, seed, paragraphs = 24) {
      const lines = generalText(rng(seed), paragraphs).map((r) => JSON.stringify(r));
      return s.writeRaw(name, lines.join('\n') + '\n');
    },
    writeRaw(name, bytes) {
      const path = join(dropDir, name);
      writeFileSync(path, bytes);
      return path;
    },
    async send(line, file, o) {
      return (await sendDrop({ client, taskQueue }, line, file, o)).request;
    },
    async close() {
      await Promise.allSettled(spawned.map((w) => stopChild(w.child, 5000)));
      await connection.close().catch(() => {});
      await installation.close().catch(() => {});
      await temporal?.stop().catch(() => {});
      await pg?.stop().catch(() => {});
      removeOwnBase();
    },
  };
  return s;
}

// ---- waiting and reading ----------------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined/false; throws with `what` after timeoutMs. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The line workflow's state, or undefined while it cannot answer (worker or server down). */
export async function stateOf(s: ChaosStack, line: string): Promise<LineState | undefined> {
  return (await lineState(s.client, line).catch(() => null)) ?? undefined;
}

/** Waits until every digest has a finished cycle on its line; returns digest -> summary. */
export async function waitForDrops(s: ChaosStack, drops: { line: string; digest: string }[], timeoutMs: number): Promise<Map<string, CycleSummary>> {
  const done = new Map<string, CycleSummary>();
  const lines = [...new Set(drops.map((d) => d.line))];
  await until(
    `${drops.length} drops on ${lines.length} lines to finish their cycles`,
    timeoutMs,
    async () => {
      for (const line of lines) {
        const pending = drops.filter((d) => d.line === line && !done.has(`${line}/${d.digest}`));
        if (!pending.length) continue;
        const state = await stateOf(s, line);
        for (const d of pending) {
          const c = state?.recent.find((r) => r.digest === d.digest);
          if (c) done.set(`${line}/${d.digest}`, c);
        }
      }
      return done.size === drops.length;
    },
    500,
  );
  return done;
}

/** Waits until the line's current cycle is in `phase` (and, when given, training reached `minStep`). */
export function waitForPhase(s: ChaosStack, line: string, phase: string, timeoutMs: number, minStep = 0): Promise<LineState> {
  return until(
    `${line} to reach ${phase}${minStep ? ` step ${minStep}` : ''}`,
    timeoutMs,
    async () => {
      const st = await stateOf(s, line);
      return st?.current?.phase === phase && (st.current.step ?? 0) >= minStep ? st : undefined;
    },
    150,
  );
}

/** Decodes a Temporal payload (default JSON converter). */
export function decodePayload<T>(payload: unknown): T | undefined {
  if (!payload) return undefined;
  return defaultPayloadConverter.fromPayload(payload as never) as T;
}

/** What a cycle's history says about its training activity: attempts and the result it returned. */
export async function trainingOfCycle(s: ChaosStack, cycleId: string): Promise<{ attempts: number; outcome?: TrainingOutcome }> {
  const history = await s.client.workflow.getHandle(cycleId).fetchHistory();
  let scheduled: number | undefined;
  let attempts = 0;
  let outcome: TrainingOutcome | undefined;
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainCandidate') scheduled = Number(e.eventId);
    if (scheduled !== undefined && Number(e.activityTaskStartedEventAttributes?.scheduledEventId ?? -1) === scheduled)
      attempts = e.activityTaskStartedEventAttributes!.attempt ?? 1;
    if (scheduled !== undefined && Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? -1) === scheduled)
      outcome = decodePayload<TrainingOutcome>(e.activityTaskCompletedEventAttributes!.result?.payloads?.[0]);
  }
  return { attempts, outcome };
}

/** The pending training activity of a cycle as the server sees it: attempt and last recorded heartbeat. */
export async function pendingTraining(
  s: ChaosStack,
  cycleId: string,
): Promise<{ attempt: number; heartbeat?: { step: number; checkpoint?: string } } | undefined> {
  const d = await s.client.workflow.getHandle(cycleId).describe();
  const p = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainCandidate');
  if (!p) return undefined;
  return { attempt: p.attempt ?? 1, heartbeat: decodePayload(p.heartbeatDetails?.payloads?.[0]) };
}

/** Checkpoints in the artifact store written since `sinceMs` (the training scenario has one run at a time). */
export async function checkpointsInStore(s: ChaosStack, sinceMs: number): Promise<{ digest: string; step: number; mtimeMs: number }[]> {
  const root = join(s.dataDir, 'artifacts', 'sha256');
  const out: { digest: string; step: number; mtimeMs: number }[] = [];
  let shards: string[] = [];
  try {
    shards = readdirSync(root);
  } catch {
    return out;
  }
  for (const shard of shards) {
    for (const digest of readdirSync(join(root, shard))) {
      const path = join(root, shard, digest);
      const st = statSync(path);
      if (st.mtimeMs < sinceMs) continue;
      try {
        out.push({ digest, step: readCheckpoint(await readFile(path)).step, mtimeMs: st.mtimeMs });
      } catch {
        // not a checkpoint (a drop, weights, a manifest)
      }
    }
  }
  return out.sort((a, b) => a.step - b.step);
}

// ---- accounting and duplicates -------------------------------------------------------------------------------

export interface Accounting {
  /** Drop files written to the drop folder by the scenario. */
  dropsIn: number;
  /** Drops with a row in PostgreSQL, by status. */
  postgres: Record<string, number>;
  /** Drops with a finished cycle in Temporal (line workflow state and completed cycle workflows), by verdict. */
  temporal: Record<string, number>;
  /** Completed cycle workflows. */
  cycles: number;
  accountedFor: number;
  /** Every way the three views disagree. */
  problems: string[];
}

/**
 * Counts every drop sent in three places: the drop folder (`files`), PostgreSQL (data_drops) and Temporal (the
 * line workflow's recent cycles and the completed cycle workflows) and says where they disagree.
 */
export async function accountFor(s: ChaosStack, sent: { line: string; digest: string; file: string }[]): Promise<Accounting> {
  const problems: string[] = [];
  const files = new Set(readdirSync(s.dropDir).map((f) => join(s.dropDir, f)));
  for (const d of sent) if (!files.has(d.file)) problems.push(`${d.file} is not in the drop folder`);
  const sql = postgres(s.adminUrl, { max: 1, onnotice: () => {} });
  const pg: Record<string, number> = {};
  const tp: Record<string, number> = {};
  let cycles = 0;
  let accountedFor = 0;
  try {
    const lines = [...new Set(sent.map((d) => d.line))];
    const rows = await sql<{ line: string; digest: string; status: string }[]>`
      select l.name as line, d.digest, d.status from data_drops d join lines l on l.id = d.line_id where l.name = any(${lines})`;
    const byKey = new Map(rows.map((r) => [`${r.line}/${r.digest}`, r.status]));
    for (const line of lines) {
      const state = await lineState(s.client, line);
      const mine = sent.filter((d) => d.line === line);
      if (!state) {
        problems.push(`line workflow ${lineWorkflowId(line)} does not answer`);
        continue;
      }
      if (state.current) problems.push(`${line} still runs ${state.current.cycleId}`);
      if (state.queue.length) problems.push(`${line} still has ${state.queue.length} queued drops`);
      // Every cycle the line started completed, exactly once per drop.
      const results: CycleResult[] = [];
      for (let n = 1; n <= state.cyclesStarted; n++) {
        const handle = s.client.workflow.getHandle(`cycle:${line}:${n}`);
        try {
          const d = await handle.describe();
          if (d.status.name !== 'COMPLETED') {
            // The line recorded the innermost failure message: it says which step broke and why.
            const why = state.recent.find((c) => c.cycleId === `cycle:${line}:${n}`)?.reason;
            problems.push(`cycle:${line}:${n} is ${d.status.name}${why ? ` (${why})` : ''}`);
          } else results.push(await handle.result());
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          problems.push(`cycle:${line}:${n} does not exist`);
        }
      }
      cycles += results.length;
      if (results.length !== mine.length) problems.push(`${line}: ${mine.length} drops sent but ${results.length} cycles completed`);
      for (const d of mine) {
        const ran = state.recent.filter((c) => c.digest === d.digest);
        if (ran.length !== 1) problems.push(`${line}: drop ${d.digest.slice(0, 12)} ran in ${ran.length} cycles`);
        const verdict = ran[0]?.verdict;
        const status = byKey.get(`${line}/${d.digest}`);
        if (verdict) tp[verdict] = (tp[verdict] ?? 0) + 1;
        if (status) pg[status] = (pg[status] ?? 0) + 1;
        if (!status) problems.push(`${line}: drop ${d.digest.slice(0, 12)} has no row in data_drops`);
        else if (status !== ({ promoted: 'accepted', quarantined: 'quarantined', rejected: 'rejected' } as Record<string, string>)[verdict ?? ''])
          problems.push(`${line}: drop ${d.digest.slice(0, 12)} is ${status} in PostgreSQL but ${verdict ?? 'unfinished'} in Temporal`);
        else accountedFor++;
      }
      const extra = rows.filter((r) => r.line === line && !mine.some((d) => d.digest === r.digest));
      for (const r of extra) problems.push(`${line}: data_drops has ${r.digest.slice(0, 12)} that was never sent`);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { dropsIn: sent.length, postgres: pg, temporal: tp, cycles, accountedFor, problems };
}

export interface DuplicateReport {
  /** Human-readable duplicates; empty when there are none. */
  duplicates: string[];
  /** Other broken invariants (a channel's epoch against its releases, the audit chain). */
  problems: string[];
  counts: { versions: number; releases: number; auditEntries: number };
}

/**
 * Looks for what a retried or replayed step could have written twice: a drop trained twice, two versions of
 * one training run, two automatic moves of a channel to the same version, two audit entries for one fact.
 */
export async function findDuplicates(s: ChaosStack, lines?: string[]): Promise<DuplicateReport> {
  const sql = postgres(s.adminUrl, { max: 1, onnotice: () => {} });
  const duplicates: string[] = [];
  const problems: string[] = [];
  const scope = lines ?? (await sql<{ name: string }[]>`select name from lines`).map((r) => r.name);
  try {
    for (const r of await sql<{ line: string; digest: string; n: number }[]>`
      select l.name as line, d.digest, count(*)::int as n from version_drops vd join data_drops d on d.id = vd.drop_id join lines l on l.id = d.line_id
      where l.name = any(${scope}) group by l.name, d.digest having count(*) > 1`)
      duplicates.push(`drop ${r.line}/${r.digest.slice(0, 12)} is in ${r.n} versions`);
    for (const r of await sql<{ line: string; digest: string; n: number }[]>`
      select l.name as line, d.digest, count(*)::int as n from training_run_drops td join data_drops d on d.id = td.drop_id join lines l on l.id = d.line_id
      where l.name = any(${scope}) group by l.name, d.digest having count(*) > 1`)
      duplicates.push(`drop ${r.line}/${r.digest.slice(0, 12)} was trained by ${r.n} runs`);
    for (const r of await sql<{ line: string; channel: string; to: number; n: number }[]>`
      select l.name as line, c.name as channel, r.to_number as to, count(*)::int as n from releases r join channels c on c.id = r.channel_id join lines l on l.id = r.line_id
      where l.name = any(${scope}) and r.actor = 'perennial' and r.request_key not like '%rollback' and r.request_key not like '%revert'
      group by l.name, c.name, r.to_number having count(*) > 1`)
      duplicates.push(`${r.line}@${r.channel} was moved to ${r.to} ${r.n} times by the loop`);
    // Audit: one entry per fact.
    const unique = ['line.create', 'drop.record', 'training.start', 'training.finish', 'version.create', 'gate.decide', 'suite.create'];
    for (const r of await sql<{ action: string; subject: string; n: number }[]>`
      select action, subject, count(*)::int as n from audit_log where action = any(${unique}) group by action, subject having count(*) > 1`)
      if (scope.some((l) => r.subject.startsWith(`${l}@`) || r.subject.startsWith(`${l}/`) || r.subject === l))
        duplicates.push(`${r.n} audit entries ${r.action} ${r.subject}`);
    for (const r of await sql<{ key: string; n: number }[]>`
      select details->>'requestKey' as key, count(*)::int as n from audit_log where action = 'channel.move' group by 1 having count(*) > 1`)
      duplicates.push(`${r.n} audit entries channel.move for request ${r.key}`);
    // Every release has exactly one audit entry, and every channel's epoch counts its releases.
    for (const r of await sql<{ id: number; n: number }[]>`
      select r.id::int as id, count(a.seq)::int as n from releases r left join audit_log a on a.action = 'channel.move' and (a.details->>'releaseId')::bigint = r.id
      group by r.id having count(a.seq) <> 1`)
      problems.push(`release ${r.id} has ${r.n} audit entries`);
    for (const r of await sql<{ line: string; channel: string; epoch: number; n: number; version: number | null; last: number | null }[]>`
      select l.name as line, c.name as channel, c.epoch::int as epoch, count(r.id)::int as n, c.version_number as version,
        (select r2.to_number from releases r2 where r2.channel_id = c.id order by r2.epoch desc limit 1) as last
      from channels c join lines l on l.id = c.line_id left join releases r on r.channel_id = c.id
      where l.name = any(${scope}) group by l.name, c.name, c.id`)
      if (r.epoch !== r.n || r.version !== r.last)
        problems.push(`${r.line}@${r.channel}: epoch ${r.epoch}, ${r.n} releases, at ${r.version}, last release to ${r.last}`);
    const [counts] = await sql<{ versions: number; releases: number; audit: number }[]>`
      select (select count(*) from versions v join lines l on l.id = v.line_id where l.name = any(${scope}))::int as versions,
             (select count(*) from releases r join lines l on l.id = r.line_id where l.name = any(${scope}))::int as releases,
             (select count(*) from audit_log)::int as audit`;
    const audit = await s.registry.verifyAudit();
    if (!audit.ok) problems.push(`the audit chain does not verify: ${audit.firstBad?.reason ?? JSON.stringify(audit.problems.slice(0, 3))}`);
    return { duplicates, problems, counts: { versions: counts!.versions, releases: counts!.releases, auditEntries: counts!.audit } };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** What each line and its running cycle are doing now: for the message of a scenario that timed out. */
export async function diagnose(s: ChaosStack, lines: string[]): Promise<string> {
  const out: string[] = [];
  for (const line of lines) {
    const st = await stateOf(s, line);
    out.push(
      `${line}: ${st ? `current ${st.current ? `${st.current.cycleId} ${st.current.phase} step ${st.current.step ?? '-'}` : 'none'}, queue ${st.queue.length}, recent ${st.recent.map((r) => r.verdict).join(',')}` : 'no answer'}`,
    );
    if (st?.current) {
      const d = await s.client.workflow
        .getHandle(st.current.cycleId)
        .describe()
        .catch(() => undefined);
      for (const a of d?.raw.pendingActivities ?? [])
        out.push(`  ${a.activityType?.name} attempt ${a.attempt} state ${a.state} last failure: ${a.lastFailure?.message ?? '-'}`);
    }
  }
  out.push(
    `workers alive: ${s
      .live()
      .map((w) => `${w.kind}:${w.child.pid}`)
      .join(' ')}`,
  );
  return out.join('\n');
}
