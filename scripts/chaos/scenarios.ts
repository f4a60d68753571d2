/**
 * The fault scenarios, each on a ChaosStack: inject the fault, let the loop recover, and measure what the
 * user would see. Each returns its figures and the guarantees it found broken (`problems`); the stack tests
 * assert on them and `npm run chaos` prints them.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readCheckpoint } from '../../model/train.ts';
import { ChannelConflictError } from '../../schemas/contracts/errors.ts';
import { openRegistry } from '../../workers/wiring.ts';
import {
  accountFor,
  checkpointsInStore,
  diagnose,
  findDuplicates,
  pendingTraining,
  sleep,
  stateOf,
  trainingOfCycle,
  until,
  waitForDrops,
  waitForPhase,
  type Accounting,
  type ChaosStack,
  type DuplicateReport,
} from './harness.ts';
import { restartPoints } from './verdict.ts';

const unique = () => randomBytes(3).toString('hex');

// ---- SIGKILL of the training worker in the middle of training ---------------------------------------------------

export interface TrainingKillResult {
  line: string;
  cycleId: string;
  verdict: string;
  killedPid: number;
  restartedPid: number;
  steps: number;
  checkpointEvery: number;
  /** The furthest step the killed attempt is known to have reached (its last checkpoint or progress report). */
  killedAtStep: number;
  lastCheckpointBeforeKill: number;
  /** Step of the checkpoint in the heartbeat the server held when the retry started (0: none, from scratch). */
  resumedFromCheckpoint: number;
  /** `resumedFromStep` as the activity reported it. */
  reportedResumedFromStep: number;
  stepsRedone: number;
  stepsPerSecond: number;
  attempts: number;
  /** Seconds from the kill to the end of the cycle. */
  recoverySeconds: number;
  /** The cycle did not complete cleanly (verdict, attempts, versions, duplicates). */
  problems: string[];
  /** The retry redid more than one checkpoint interval, or misreported where it resumed. */
  resumeProblems: string[];
}

/**
 * Trains one candidate, SIGKILLs the training worker once `killAt` of the steps are checkpointed, starts a
 * fresh worker, and measures where the retried activity resumed and whether the cycle completes.
 */
export async function trainingWorkerKill(
  s: ChaosStack,
  opts: { steps: number; checkpointEvery: number; killAt?: number; timeoutMs?: number },
): Promise<TrainingKillResult> {
  const line = `tk-${s.name}-${unique()}`;
  await s.createLine(line, { recipe: { steps: opts.steps, checkpointEvery: opts.checkpointEvery } });
  // A drop of its own: identical content would train identical checkpoints, which the store already holds.
  const file = s.writeDrop(`${line}.jsonl`, parseInt(unique(), 16), 30);
  const since = Date.now() - 1000;
  const drop = await s.send(line, file);
  const state = await waitForPhase(s, line, 'adapt', opts.timeoutMs ?? 120_000);
  const cycleId = state.current!.cycleId;
  const killStep = Math.ceil((opts.steps * (opts.killAt ?? 0.4)) / opts.checkpointEvery) * opts.checkpointEvery;
  const seen = await until(
    `a checkpoint at step ${killStep}`,
    120_000,
    async () => {
      const list = await checkpointsInStore(s, since);
      return list.some((c) => c.step >= killStep) ? list : undefined;
    },
    50,
  );
  // Strike in the middle of the next interval, not just after a checkpoint: the typical moment of a crash.
  const [previous, latest] = seen.slice(-2);
  const stepsPerSecond =
    previous && latest && latest.mtimeMs > previous.mtimeMs ? ((latest.step - previous.step) * 1000) / (latest.mtimeMs - previous.mtimeMs) : 0;
  if (stepsPerSecond > 0) await sleep(Math.min(5000, (opts.checkpointEvery / stepsPerSecond) * 500));

  s.ledger.injected('training-worker-sigkill');
  const [killedPid] = await s.kill('training');
  const killedAt = Date.now();
  const before = await checkpointsInStore(s, since);
  const last = before.at(-1);
  const lastCheckpointBeforeKill = last?.step ?? 0;
  const [restarted] = await s.spawn('training');
  // The heartbeat the server holds while the dead attempt times out is what the retry will read.
  let heartbeat: { step: number; checkpoint?: string } | undefined;
  await until(
    'the training activity to be retried',
    (opts.timeoutMs ?? 120_000) + 60_000,
    async () => {
      const p = await pendingTraining(s, cycleId);
      if (p?.attempt === 1) heartbeat = p.heartbeat;
      return p === undefined || p.attempt > 1;
    },
    200,
  );
  const done = await waitForDrops(s, [{ line, digest: drop.digest }], opts.timeoutMs ?? 180_000);
  const summary = done.get(`${line}/${drop.digest}`)!;
  const recoverySeconds = (Date.now() - killedAt) / 1000;
  const { attempts, outcome } = await trainingOfCycle(s, cycleId);
  const resumedFromCheckpoint = heartbeat?.checkpoint ? readCheckpoint(await s.store.get(heartbeat.checkpoint)).step : 0;
  // The step reached at the kill, estimated from the training speed (the heartbeat's step is a lower bound).
  const sinceCheckpoint = last && stepsPerSecond > 0 ? Math.floor(((killedAt - last.mtimeMs) / 1000) * stepsPerSecond) : 0;
  const killedAtStep = Math.max(heartbeat?.step ?? 0, lastCheckpointBeforeKill + Math.min(opts.checkpointEvery - 1, sinceCheckpoint));
  const stepsRedone = killedAtStep - resumedFromCheckpoint;
  const reportedResumedFromStep = outcome?.resumedFromStep ?? -1;

  const problems: string[] = [];
  if (summary.verdict !== 'promoted') problems.push(`the cycle ended ${summary.verdict}: ${summary.reason}`);
  if (attempts < 2) problems.push(`the training activity ran ${attempts} time(s); the kill should have forced a retry`);
  if (outcome && outcome.steps !== opts.steps) problems.push(`training reported ${outcome.steps} steps, not ${opts.steps}`);
  const run = await s.registry.getTrainingRun(`${cycleId}:${drop.digest.slice(0, 16)}`);
  if (run?.status !== 'completed' || run.steps !== opts.steps || run.version !== summary.version)
    problems.push(`training run is ${run?.status} with ${run?.steps} steps and version ${run?.version} (cycle version ${summary.version})`);
  const dup = await findDuplicates(s, [line]);
  problems.push(...dup.duplicates, ...dup.problems);

  const resumeProblems: string[] = [];
  if (stepsRedone > opts.checkpointEvery)
    resumeProblems.push(
      `the retry resumed from ${resumedFromCheckpoint ? `the checkpoint at step ${resumedFromCheckpoint}` : 'scratch (no checkpoint in its heartbeat)'} after the kill at about step ${killedAtStep} (last checkpoint: step ${lastCheckpointBeforeKill}): ${stepsRedone} steps trained twice, more than one checkpoint interval (${opts.checkpointEvery})`,
    );
  if (reportedResumedFromStep !== resumedFromCheckpoint)
    resumeProblems.push(`the activity reported resumedFromStep ${reportedResumedFromStep}, but it resumed from step ${resumedFromCheckpoint}`);
  if (problems.length === 0) s.ledger.survived('training-worker-sigkill');
  return {
    line,
    cycleId,
    verdict: summary.verdict,
    killedPid: killedPid!,
    restartedPid: restarted!.child.pid!,
    steps: opts.steps,
    checkpointEvery: opts.checkpointEvery,
    killedAtStep,
    lastCheckpointBeforeKill,
    resumedFromCheckpoint,
    reportedResumedFromStep,
    stepsRedone,
    stepsPerSecond: Math.round(stepsPerSecond),
    attempts,
    recoverySeconds,
    problems,
    resumeProblems,
  };
}

// ---- several lines at once, with a fault in the middle -------------------------------------------------------------

export interface SentDrop {
  line: string;
  digest: string;
  file: string;
  kind: 'good' | 'bad' | 'destructive';
}

/** Creates `lines` lines and sends each `drops` drops: good text, and (when asked) malformed and destructive ones. */
export async function sendMany(
  s: ChaosStack,
  prefix: string,
  opts: { lines: number; drops: number; steps?: number; badEvery?: number; destructiveEvery?: number },
): Promise<SentDrop[]> {
  const tag = unique();
  const lines = Array.from({ length: opts.lines }, (_, i) => `${prefix}-${tag}-${i}`);
  await Promise.all(lines.map((l) => s.createLine(l, opts.steps ? { recipe: { steps: opts.steps } } : {})));
  const sent: SentDrop[] = [];
  let n = 0;
  for (let d = 0; d < opts.drops; d++) {
    await Promise.all(
      lines.map(async (line, i) => {
        const k = ++n;
        const bad = opts.badEvery !== undefined && k % opts.badEvery === 0;
        // A destructive update needs a champion to damage: never the first drop of a line.
        const destructive = !bad && d > 0 && opts.destructiveEvery !== undefined && k % opts.destructiveEvery === 0;
        const name = `${line}-${d}.jsonl`;
        const file = bad
          ? s.writeRaw(name, `{"text": "drop ${k} starts well"}\n{"text": broken ${k}\n`)
          : s.writeDrop(name, parseInt(tag, 16) + 1000 * i + d + 1, 20);
        const request = await s.send(line, file, destructive ? { recipe: { learningRate: 1, gradClip: 1000, warmupSteps: 0, l2Pull: 0 } } : {});
        sent.push({ line, digest: request.digest, file, kind: bad ? 'bad' : destructive ? 'destructive' : 'good' });
      }),
    );
  }
  return sent;
}

export interface FaultRunResult {
  kind: string;
  sent: SentDrop[];
  accounting: Accounting;
  duplicates: DuplicateReport;
  seconds: number;
  /** Cycles per minute from the first drop to the last verdict. */
  cyclesPerMinute: number;
  problems: string[];
  detail: Record<string, unknown>;
}

async function settle(
  s: ChaosStack,
  kind: string,
  sent: SentDrop[],
  started: number,
  timeoutMs: number,
  problems: string[],
  detail: Record<string, unknown>,
): Promise<FaultRunResult> {
  await waitForDrops(s, sent, timeoutMs).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await diagnose(s, [...new Set(sent.map((d) => d.line))])}`);
  });
  const seconds = (Date.now() - started) / 1000;
  const accounting = await accountFor(s, sent);
  const duplicates = await findDuplicates(s, [...new Set(sent.map((d) => d.line))]);
  problems.push(...accounting.problems, ...duplicates.duplicates, ...duplicates.problems);
  // Malformed drops are quarantined, never trained; good ones are never quarantined.
  const verdicts = await Promise.all(sent.map(async (d) => ({ d, v: (await stateOf(s, d.line))?.recent.find((c) => c.digest === d.digest)?.verdict })));
  for (const { d, v } of verdicts) {
    if (d.kind === 'bad' && v !== 'quarantined') problems.push(`malformed drop ${d.file} ended ${v}, not quarantined`);
    if (d.kind !== 'bad' && v !== 'promoted' && v !== 'rejected') problems.push(`drop ${d.file} ended ${v}`);
  }
  return { kind, sent, accounting, duplicates, seconds, cyclesPerMinute: accounting.cycles / (seconds / 60), problems, detail };
}

/** SIGKILLs every worker while cycles are open on several lines, starts fresh ones, checks everything completes once. */
export async function killAllWorkers(s: ChaosStack, opts: { lines: number; drops: number; steps: number; timeoutMs: number }): Promise<FaultRunResult> {
  const started = Date.now();
  const sent = await sendMany(s, `ka-${s.name}`, { lines: opts.lines, drops: opts.drops, steps: opts.steps });
  const lines = [...new Set(sent.map((d) => d.line))];
  // Strike while a candidate trains and the other lines wait with open cycles.
  await until(
    'a line to be training',
    120_000,
    async () => {
      // All lines at once, so a slow query on one line does not hide another line's short training phase.
      const states = await Promise.all(lines.map((l) => stateOf(s, l)));
      return states.some((st) => st?.current?.phase === 'adapt');
    },
    100,
  );
  const phases = await Promise.all(lines.map(async (l) => (await stateOf(s, l))?.current?.phase ?? 'idle'));
  const counts = { workflow: s.live('workflow').length, training: s.live('training').length };
  s.ledger.injected('all-workers-sigkill');
  const killed = await s.kill('all');
  await sleep(500);
  await Promise.all([s.spawn('workflow', counts.workflow), s.spawn('training', counts.training)]);
  const result = await settle(s, 'all-workers-sigkill', sent, started, opts.timeoutMs, [], { killed: killed.length, phasesAtKill: phases });
  if (result.problems.length === 0) s.ledger.survived('all-workers-sigkill');
  return result;
}

/** SIGKILLs the Temporal dev server while cycles run, restarts it on the same file, checks every line and cycle goes on. */
export async function killTemporal(
  s: ChaosStack,
  opts: { lines: number; drops: number; steps: number; downMs?: number; timeoutMs: number },
): Promise<FaultRunResult> {
  const started = Date.now();
  const sent = await sendMany(s, `tp-${s.name}`, { lines: opts.lines, drops: opts.drops, steps: opts.steps });
  const lines = [...new Set(sent.map((d) => d.line))];
  await until(
    'a line to be training',
    120_000,
    async () => {
      // All lines at once, so a slow query on one line does not hide another line's short training phase.
      const states = await Promise.all(lines.map((l) => stateOf(s, l)));
      return states.some((st) => st?.current?.phase === 'adapt');
    },
    100,
  );
  const workersBefore = s.live().map((w) => w.child.pid);
  s.ledger.injected('temporal-sigkill');
  const oldPid = s.temporalPid();
  await s.killTemporal();
  await sleep(opts.downMs ?? 2000);
  await s.restartTemporal();
  const problems: string[] = [];
  const result = await settle(s, 'temporal-sigkill', sent, started, opts.timeoutMs, problems, { oldPid, newPid: s.temporalPid() });
  const workersAfter = s.live().map((w) => w.child.pid);
  const lost = workersBefore.filter((p) => !workersAfter.includes(p));
  if (lost.length) result.problems.push(`worker processes ${lost.join(', ')} exited while Temporal was down`);
  for (const l of lines) {
    const d = await s.client.workflow.getHandle(`line:${l}`).describe();
    if (d.status.name !== 'RUNNING') result.problems.push(`line workflow line:${l} is ${d.status.name}, not RUNNING`);
  }
  if (result.problems.length === 0) s.ledger.survived('temporal-sigkill');
  return result;
}

export interface PostgresRestartResult {
  line: string;
  verdict: string;
  version?: number;
  /** Seconds PostgreSQL was down while the cycle tried to promote. */
  downSeconds: number;
  workersSurvived: boolean;
  stableReleases: number;
  /**
   * Channel moves from this process while PostgreSQL went away: how many were cut mid-flight and retried, and
   * how many times the driver threw from a timer (postgres.js#1154; caught here, it would end a worker).
   */
  storm: { movers: number; moves: number; interrupted: number; driverCrashes: number; poisoned: number; problems: string[] };
  problems: string[];
}

/**
 * Stops PostgreSQL while a cycle waits in its canary window, so that the promotion to stable runs against a
 * database that is down; starts it again; checks the Node processes lived through it, the promotion is
 * whole (one release, one audit entry, the channel's epoch) and happened. Meanwhile a storm of channel moves
 * from this process is cut mid-flight, and every move must be there exactly once or not at all.
 */
export async function restartPostgresDuringPromotion(
  s: ChaosStack,
  opts: { downMs?: number; movers?: number; movesEach?: number; timeoutMs: number },
): Promise<PostgresRestartResult> {
  const line = `pg-${s.name}-${unique()}`;
  await s.createLine(line, { promotion: { canaryWindow: '3s' } });
  const stormLine = `storm-${s.name}-${unique()}`;
  await s.createLine(stormLine);
  await seedVersions(s, stormLine, 2);
  const movers = opts.movers ?? 4;
  const movesEach = opts.movesEach ?? 30;
  for (let i = 0; i < movers; i++) await s.registry.ensureChannel({ line: stormLine, channel: `storm-${i}`, actor: 'chaos' });

  const drop = await s.send(line, s.writeDrop(`${line}.jsonl`, parseInt(unique(), 16), 30));
  // The canary window (3 s) starts once the canary channel has moved; the database goes down inside it. (A
  // fresh line: the first version on its canary channel is this cycle's candidate.)
  await until(
    'the candidate on canary',
    opts.timeoutMs,
    async () => ((await s.registry.getChannels(line)).find((c) => c.channel === 'canary')?.version ?? null) !== null,
    25,
  );
  const workers = s.live();
  const pids = workers.map((w) => w.child.pid);

  // The storm has a connection pool of its own, like a worker process would, so that what the outage does
  // to a pool (see `poisoned` below) shows on its own and leaves this process's other reads alone.
  const storming = openRegistry(s.appUrl, s.dataDir);
  let poisoned = 0;
  let interrupted = 0;
  let stop = false;
  // A known postgres.js 3.4.9 defect (porsager/postgres#1154, #1208) can throw from a setImmediate when a socket
  // closes with a write buffered, which would end this process; it is caught and counted here, not hidden.
  const guard = driverCrashGuard();
  let driverCrashes = 0;
  let downSeconds = 0;
  let restartedAt = 0;
  let survivedDown = false;
  const stormProblems: string[] = [];
  try {
    const storm = Array.from({ length: movers }, (_, i) =>
      (async () => {
        for (let k = 0; k < movesEach && !stop; k++) {
          const requestKey = `storm:${stormLine}:${i}:${k}`;
          let expectedEpoch: number | undefined;
          for (;;) {
            try {
              expectedEpoch ??= (await storming.registry.getChannels(stormLine)).find((c) => c.channel === `storm-${i}`)!.epoch;
              await storming.registry.moveChannel({
                line: stormLine,
                channel: `storm-${i}`,
                to: (k % 2) + 1,
                expectedEpoch,
                actor: 'chaos',
                reason: 'storm',
                requestKey,
              });
              break;
            } catch (err) {
              if (err instanceof ChannelConflictError) throw err;
              interrupted++;
              await sleep(200);
            }
          }
          await sleep(20);
        }
      })(),
    );
    await sleep(300);
    s.ledger.injected('postgres-restart');
    const downAt = Date.now();
    await s.stopPostgres();
    // The canary window (3 s) ends while the database is down: the promotion's registry writes fail and are
    // retried. (Registry steps may be local activities, which the server does not list while they retry.)
    await sleep(3000 + (opts.downMs ?? 3000));
    survivedDown = workers.every((w) => w.child.exitCode === null && w.child.signalCode === null);
    // Measured from the start of the restart: a promotion retried while the new server comes up is after it.
    restartedAt = Date.now();
    await s.restartPostgres();
    downSeconds = (Date.now() - downAt) / 1000;
    await Promise.all(storm).catch((err: Error) => stormProblems.push(`a storm mover failed: ${err.message}`));
    await sleep(500);
    // After the outage every query on the storm's pool must work again; a connection left with a write it
    // can never flush (postgres.js#1154) times out on each query routed to it instead.
    for (let i = 0; i < 12; i++) {
      const ok = await Promise.race([storming.registry.getChannels(stormLine).then(() => true), sleep(2000).then(() => false)]).catch(() => false);
      if (!ok) poisoned++;
    }
  } finally {
    stop = true;
    driverCrashes = guard.release();
    void storming.close().catch(() => undefined);
  }

  const done = await waitForDrops(s, [{ line, digest: drop.digest }], opts.timeoutMs);
  const summary = done.get(`${line}/${drop.digest}`)!;
  const problems: string[] = [];
  const workersSurvived = survivedDown && s.live().filter((w) => pids.includes(w.child.pid)).length === pids.length;
  if (!workersSurvived) problems.push('a worker process exited while PostgreSQL was down');
  if (summary.verdict !== 'promoted') problems.push(`the cycle ended ${summary.verdict}: ${summary.reason}`);
  const stable = (await s.registry.getChannels(line)).find((c) => c.channel === 'stable');
  if (stable?.version !== summary.version) problems.push(`stable is at ${stable?.version}, the cycle promoted ${summary.version}`);
  const toStable = await s.registry.listReleases(line, { channel: 'stable' });
  const stableReleases = toStable.length;
  if (stableReleases !== 1) problems.push(`${stableReleases} releases to stable, expected exactly 1`);
  // The promotion was due while the database was down (the window ended before the restart) and committed after.
  const canaryMove = (await s.registry.listReleases(line, { channel: 'canary' }))[0];
  if (canaryMove && canaryMove.at.getTime() + 3000 > restartedAt) problems.push('the canary window did not end while PostgreSQL was down');
  if (toStable[0] && toStable[0].at.getTime() < restartedAt)
    problems.push(`the promotion committed at ${toStable[0].at.toISOString()}, before PostgreSQL went down`);
  // Every storm move is there exactly once: its release, its audit entry, the channel's epoch.
  const releases = await s.registry.listReleases(stormLine);
  for (let i = 0; i < movers; i++) {
    const mine = releases.filter((r) => r.channel === `storm-${i}`);
    const keys = new Set(mine.map((r) => r.requestKey));
    if (keys.size !== mine.length) stormProblems.push(`storm-${i} has a request key twice`);
    if (mine.length !== movesEach) stormProblems.push(`storm-${i} has ${mine.length} moves, expected ${movesEach}`);
  }
  const dup = await findDuplicates(s, [line, stormLine]);
  problems.push(...dup.duplicates, ...dup.problems, ...stormProblems);
  if (problems.length === 0) s.ledger.survived('postgres-restart');
  return {
    line,
    verdict: summary.verdict,
    version: summary.version,
    downSeconds,
    workersSurvived,
    stableReleases,
    storm: { movers, moves: releases.length, interrupted, driverCrashes, poisoned, problems: stormProblems },
    problems,
  };
}

/** True for the postgres.js 3.4.9 crash: `socket.write` on a connection that has closed, thrown from a timer. */
export function isDriverNullSocketCrash(err: unknown): boolean {
  const e = err as Error;
  return e instanceof TypeError && /reading 'write'/.test(e.message) && /postgres\/src\/connection\.js/.test(e.stack ?? '');
}

/**
 * Catches (and counts) that one crash in this process until release(); any other uncaught error goes on to
 * the listeners that were there before (vitest's, which fail the run).
 */
export function driverCrashGuard(): { release(): number } {
  const others = process.listeners('uncaughtException');
  let crashes = 0;
  const guard = (err: Error, origin: NodeJS.UncaughtExceptionOrigin) => {
    if (isDriverNullSocketCrash(err)) crashes++;
    else if (others.length) for (const l of others) l(err, origin);
    else throw err;
  };
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', guard);
  return {
    release() {
      process.off('uncaughtException', guard);
      for (const l of others) process.on('uncaughtException', l);
      return crashes;
    },
  };
}

/** Puts `n` versions on a line straight through the registry (weights are random bytes; nothing trains). */
export async function seedVersions(s: ChaosStack, line: string, n: number): Promise<void> {
  let parent: number | null = null;
  for (let i = 0; i < n; i++) {
    const key = `seed-${line}-${i}`;
    const weightsDigest = await s.store.put(randomBytes(1024));
    const recipe = { steps: 1, seed: 1 };
    await s.registry.startTrainingRun({ line, key, parentVersion: parent, recipe, seed: 1, drops: [] });
    await s.registry.finishTrainingRun(key, {
      status: 'completed',
      steps: 1,
      tokens: 1,
      flops: 1,
      wallMs: 1,
      backend: 'none',
      finalLoss: 1,
      artifactDigest: weightsDigest,
    });
    const v = await s.registry.createVersion({
      line,
      trainingRunKey: key,
      parentVersion: parent,
      weightsDigest,
      recipe,
      drops: [],
      codeRevision: 'chaos',
      seed: 1,
      backend: 'none',
      compute: { tokens: 1, flops: 1, wallMs: 1, steps: 1 },
    });
    parent = v.version;
  }
}

/** One worker restart of the load run, and where in the run it landed. */
export interface LoadRestart {
  kind: 'workflow' | 'training';
  signal: NodeJS.Signals;
  /** The completed-cycle count it waited for (restartPoints). */
  afterCycles: number;
  /** Cycles completed, and still open or queued, as last read before the signal (one round of parallel queries before it). */
  completed: number;
  open: number;
}

/** How many of `sent` have a finished cycle on their line now (drops already seen finished stay finished). */
async function completedCycles(s: ChaosStack, sent: SentDrop[], done: Set<string>): Promise<number> {
  // All lines at once: a query waits for the workflow worker, and under load one round of sequential queries
  // can outlast a fast run (CI saw all 8 cycles finish within one round, so no restart was injected).
  const open = [...new Set(sent.filter((d) => !done.has(`${d.line}/${d.digest}`)).map((d) => d.line))];
  const states = await Promise.all(open.map(async (line) => ({ line, state: await stateOf(s, line) })));
  for (const { line, state } of states) {
    for (const c of state?.recent ?? []) if (sent.some((d) => d.line === line && d.digest === c.digest)) done.add(`${line}/${c.digest}`);
  }
  return done.size;
}

/**
 * Many lines at once with `restarts` worker restarts injected at points of the load's progress: after the
 * k-th completed cycle (restartPoints: spread over the run, each below the total), so that every run injects
 * them while cycles are open, however fast the machine. Restart 2 is a SIGTERM of the workflow worker (a
 * deploy); the others stop a training worker with `trainingSignal`. A fresh worker is started each time. A
 * restart whose point is only seen once every cycle has completed is not injected (it would not be under
 * load), nor any after it; `detail.skipped` counts them.
 */
export async function loadWithRestarts(
  s: ChaosStack,
  opts: {
    lines: number;
    drops: number;
    steps: number;
    badEvery?: number;
    destructiveEvery?: number;
    restarts: number;
    timeoutMs: number;
    /** How training workers are stopped: SIGKILL (a crash: the activity is retried after the 30 s heartbeat timeout) or SIGTERM (a deploy). */
    trainingSignal?: NodeJS.Signals;
  },
): Promise<FaultRunResult> {
  const started = Date.now();
  const sent = await sendMany(s, `ld-${s.name}`, opts);
  const points = restartPoints(sent.length, opts.restarts);
  const injected: LoadRestart[] = [];
  const problems: string[] = [];
  let finished = false;
  const done = new Set<string>();
  const restarter = (async () => {
    for (const [i, afterCycles] of points.entries()) {
      let completed = await completedCycles(s, sent, done);
      while (completed < afterCycles && !finished) {
        await sleep(100);
        completed = await completedCycles(s, sent, done);
      }
      // Every cycle completed (or the wait for them gave up, with its own error): nothing is under load any more.
      if (completed < afterCycles || completed >= sent.length) break;
      const kind = i === 1 ? 'workflow' : 'training';
      const signal: NodeJS.Signals = kind === 'workflow' ? 'SIGTERM' : (opts.trainingSignal ?? 'SIGKILL');
      const victim = s.live(kind)[0];
      if (!victim) {
        problems.push(`no live ${kind} worker to restart after cycle ${afterCycles}`);
        continue;
      }
      s.ledger.injected('worker-restart-under-load');
      injected.push({ kind, signal, afterCycles, completed, open: sent.length - completed });
      await new Promise<void>((ok) => {
        victim.child.once('exit', () => ok());
        victim.child.kill(signal);
      });
      await s.spawn(kind);
    }
  })();
  let result: FaultRunResult;
  try {
    result = await settle(s, 'worker-restart-under-load', sent, started, opts.timeoutMs, [], {});
  } finally {
    finished = true;
    await restarter;
  }
  result.problems.push(...problems);
  result.detail = {
    restarts: injected.length,
    skipped: points.length - injected.length,
    restartPoints: points,
    restartsAt: injected,
    lines: opts.lines,
    dropsPerLine: opts.drops,
    trainingSignal: opts.trainingSignal ?? 'SIGKILL',
  };
  if (result.problems.length === 0) s.ledger.survived('worker-restart-under-load', injected.length);
  return result;
}

/** Reads a JSON-lines log file, tolerating a missing file. */
export function readJsonLines<T>(path: string): T[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as T);
  } catch {
    return [];
  }
}

/**
 * `n` transactions on a pool with the workers' settings whose backends are terminated mid-transaction: how
 * many failed with a catchable error, and how many times the driver threw out of a timer instead.
 */
export async function cutTransactions(url: string, n: number): Promise<{ caught: number; driverCrashes: number }> {
  const { connectDatabase } = await import('../../registry/db.ts');
  const app = connectDatabase(url, { max: 2 });
  const guard = driverCrashGuard();
  let caught = 0;
  let driverCrashes = 0;
  try {
    for (let i = 0; i < n; i++) {
      await app.sql
        .begin(async (tx) => {
          await tx`select pg_terminate_backend(pg_backend_pid())`;
        })
        .catch(() => caught++);
      await sleep(100);
    }
    await sleep(300);
  } finally {
    driverCrashes = guard.release();
    await app.close();
  }
  return { caught, driverCrashes };
}
