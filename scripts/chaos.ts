/**
 * `npm run chaos`: the heavy versions of the reliability and security suite, with figures. On stacks of its
 * own (embedded PostgreSQL, a file-backed Temporal dev server, worker processes) it injects every fault the
 * suite knows — SIGKILL of a training worker mid-training, of every worker, of the Temporal server;
 * PostgreSQL stopped during a promotion; 20 lines at once with worker restarts after the k-th completed
 * cycles — fuzzes drops at three depths (parser, ingest, the running loop), tries traversal strings
 * everywhere a name can meet the file system, watches every socket of the workers, and (as root, where
 * `unshare` works) runs a whole cycle in a network namespace with nothing but loopback. It prints a summary and exits 1 when a guarantee broke or a
 * fault kind was injected 0 times (a fault that was not injected was not survived).
 *
 *   npm run chaos                 # the full run (11 minutes on 2 shared cores)
 *   npm run chaos -- --quick      # a smaller run (4.5 minutes there)
 *   npm run chaos -- --lines 20 --drops 3 --rounds 2 --json
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import fc from 'fast-check';
import { sha256Hex } from '../domain/drops.ts';
import { ingestActivities } from '../activities/ingest.ts';
import { DropCache } from '../domain/suites.ts';
import { chaosBaseDir, startChaosStack, waitForDrops, type ChaosStack } from './chaos/harness.ts';
import {
  cutTransactions,
  killAllWorkers,
  killTemporal,
  loadWithRestarts,
  readJsonLines,
  restartPostgresDuringPromotion,
  trainingWorkerKill,
  type FaultRunResult,
  type LoadRestart,
  type TrainingKillResult,
} from './chaos/scenarios.ts';
import { FaultLedger, chaosVerdict, verdictExitCode, verdictLines } from './chaos/verdict.ts';
import { anyDrop, contractViolations, hugeLine, invalidUtf8, oneBadRecord, tryParse, validJsonl, type FuzzDrop } from './chaos/fuzz.ts';
import { SocketWatch, procNetAvailable, type Endpoint } from './chaos/netwatch.ts';
import { probeTraversal } from './chaos/traversal.ts';
import { PROJECT_ROOT } from './stack/stack.ts';
import { scriptArgs } from '../bench/args.ts';

const { values: args } = scriptArgs('chaos', {
  options: {
    quick: { type: 'boolean', default: false },
    lines: { type: 'string' },
    drops: { type: 'string' },
    rounds: { type: 'string' },
    json: { type: 'boolean', default: false },
    'keep-data': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'netns-cycle': { type: 'string' },
  },
});

const started = Date.now();
const say = (line: string) => process.stderr.write(`[chaos ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

if (args['netns-cycle']) {
  // Inside `unshare --net`: one whole cycle with nothing but loopback; the parent reads the last line.
  const s = await startChaosStack({ name: 'netns', baseDir: args['netns-cycle'] });
  try {
    await s.createLine('netns');
    const request = await s.send('netns', s.writeDrop('netns.jsonl', 3, 30));
    const done = await waitForDrops(s, [{ line: 'netns', digest: request.digest }], 300_000);
    console.log(JSON.stringify({ verdict: done.get(`netns/${request.digest}`)?.verdict ?? 'unfinished' }));
  } finally {
    await s.close();
  }
  process.exit(0);
}

const quick = args.quick;
const plan = {
  rounds: Number(args.rounds ?? (quick ? 1 : 2)),
  loadLines: Number(args.lines ?? (quick ? 6 : 20)),
  loadDrops: Number(args.drops ?? (quick ? 2 : 3)),
  parseRuns: quick ? 1500 : 6000,
  ingestRuns: quick ? 100 : 400,
  loopRuns: quick ? 8 : 24,
  traversalRuns: quick ? 1000 : 5000,
};

const broken: string[] = [];
const ledger = new FaultLedger();
const base = chaosBaseDir('perennial-chaos');
// Removed however the run ends (a verdict, process.exit or a throw), unless kept with --keep (or --keep-data).
const keep = args.keep || args['keep-data'];
process.on('exit', () => {
  if (!keep) rmSync(base, { recursive: true, force: true });
});
const netLog = join(base, 'net.log');
writeFileSync(netLog, '');
const guardEnv = { NODE_OPTIONS: `--import ${pathToFileURL(join(PROJECT_ROOT, 'scripts', 'chaos', 'net-guard.mjs')).href}`, PERENNIAL_NET_LOG: netLog };
const watches: SocketWatch[] = [];

/** A stack whose workers run under the network hook and the socket watch. */
async function stack(name: string, trainingWorkers: number): Promise<ChaosStack> {
  const s = await startChaosStack({ name, baseDir: base, trainingWorkers, workerEnv: guardEnv, log: (l) => say(`${name}: ${l}`) });
  if (procNetAvailable()) watches.push(new SocketWatch(() => s.live().map((w) => w.child.pid!)).start());
  return s;
}

function merge(from: FaultLedger) {
  for (const [kind, c] of from.counts) {
    ledger.injected(kind, c.injected);
    ledger.survived(kind, c.survived);
  }
}

function check(what: string, problems: string[]) {
  for (const p of problems) broken.push(`${what}: ${p}`);
}

// ---- 1. fuzzing the parser -----------------------------------------------------------------------------------
say(`fuzzing parseDrop with ${plan.parseRuns} inputs`);
const fuzz = { parsed: 0, ingested: 0, throughLoop: 0, crashes: 0, quarantined: 0, accepted: 0, violations: [] as string[] };
for (const [arb, runs] of [
  [anyDrop, plan.parseRuns],
  [oneBadRecord, Math.round(plan.parseRuns / 4)],
  [invalidUtf8, Math.round(plan.parseRuns / 8)],
  [validJsonl, Math.round(plan.parseRuns / 8)],
  [hugeLine, quick ? 3 : 10],
] as const) {
  for (const input of fc.sample(arb as fc.Arbitrary<FuzzDrop>, { numRuns: runs, seed: 1234 })) {
    fuzz.parsed++;
    const outcome = tryParse(input.bytes, input.file);
    if (outcome.kind === 'crash') fuzz.crashes++;
    fuzz.violations.push(...contractViolations(input, outcome));
  }
}
check('fuzz (parser)', fuzz.violations.slice(0, 10));

// ---- 2. traversal ---------------------------------------------------------------------------------------------
say(`trying traversal strings (${plan.traversalRuns} generated + the fixed list)`);
const traversalDir = mkdtempSync(join(tmpdir(), 'perennial-traversal-'));
let traversal: Awaited<ReturnType<typeof probeTraversal>>;
try {
  traversal = await probeTraversal(traversalDir, plan.traversalRuns, 99);
} finally {
  rmSync(traversalDir, { recursive: true, force: true });
}
check('traversal', traversal.escapes.slice(0, 10));

// ---- 3. faults on stack A -------------------------------------------------------------------------------------
const trainingKills: TrainingKillResult[] = [];
const runs: FaultRunResult[] = [];
let pg: Awaited<ReturnType<typeof restartPostgresDuringPromotion>>[] = [];
let netns: string = 'not run';
let evilVerifier: { verdict: string; seconds: number; reason: string } | undefined;
let overLimitDrop: { verdict: string; reason: string } | undefined;
let driver = { caught: 0, driverCrashes: 0 };
const a = await stack('faults', 1);
try {
  for (let round = 1; round <= plan.rounds; round++) {
    say(`round ${round}: SIGKILL of the training worker mid-training`);
    const k = await trainingWorkerKill(a, { steps: 600, checkpointEvery: 100, killAt: round === 1 ? 0.3 : 0.6 });
    trainingKills.push(k);
    check('training-worker-sigkill', k.problems);
    check('training-worker-sigkill (resume)', k.resumeProblems);

    say(`round ${round}: SIGKILL of every worker with cycles open`);
    const all = await killAllWorkers(a, { lines: 3, drops: 2, steps: 150, timeoutMs: 600_000 });
    runs.push(all);
    check('all-workers-sigkill', all.problems);

    say(`round ${round}: SIGKILL of the Temporal server`);
    const t = await killTemporal(a, { lines: 3, drops: 2, steps: 80, downMs: round === 1 ? 3000 : 8000, timeoutMs: 600_000 });
    runs.push(t);
    check('temporal-sigkill', t.problems);

    say(`round ${round}: PostgreSQL stopped during a promotion`);
    const p = await restartPostgresDuringPromotion(a, { downMs: round === 1 ? 3000 : 8000, movers: 6, movesEach: 40, timeoutMs: 600_000 });
    pg.push(p);
    check('postgres-restart', p.problems);
  }

  say('transactions whose connections are cut');
  driver = await cutTransactions(a.appUrl, 10);
  if (driver.driverCrashes)
    check('postgres driver', [
      `${driver.driverCrashes} of ${driver.caught} transactions on a cut connection threw out of a timer (postgres.js 3.4.9, porsager/postgres#1154): each would end a worker process`,
    ]);
  const stormCrashes = pg.reduce((n, p) => n + p.storm.driverCrashes, 0);
  if (stormCrashes)
    check('postgres-restart', [
      `the driver threw out of a timer ${stormCrashes} time(s) while PostgreSQL stopped under load (caught here; each would end a process)`,
    ]);

  // ---- 4. fuzzing ingest and the running loop ----------------------------------------------------------------
  say(`fuzzing ingest with ${plan.ingestRuns} files`);
  await a.createLine('fuzz-ingest');
  const ingest = ingestActivities({
    registry: a.registry,
    store: a.store,
    drops: new DropCache(a.store),
    dataDir: a.dataDir,
    client: a.client,
    codeRevision: 'chaos',
    workflowQueue: a.taskQueue,
  });
  const seen = new Set<string>();
  for (const [i, input] of fc.sample(anyDrop, { numRuns: plan.ingestRuns, seed: 4321 }).entries()) {
    const digest = sha256Hex(input.bytes);
    if (seen.has(digest)) continue;
    seen.add(digest);
    const path = a.writeRaw(`fuzz-${i}-${input.file.replace(/[^A-Za-z0-9._-]/g, '_')}`, input.bytes);
    fuzz.ingested++;
    try {
      await ingest.ingestDrop({ line: 'fuzz-ingest', request: { path, digest, source: `fuzz-${i}` }, key: `fuzz-${i}` });
      fuzz.accepted++;
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'InvalidDataError') {
        fuzz.quarantined++;
        const kept = join(a.dataDir, 'quarantine', digest);
        if (!existsSync(join(kept, 'reason.json')) || !existsSync(join(kept, 'content')))
          check('fuzz (ingest)', [`${path} was refused but not kept in quarantine`]);
        else if (JSON.parse(readFileSync(join(kept, 'reason.json'), 'utf8')).reason !== err.message)
          check('fuzz (ingest)', [`${path}: the quarantine reason differs`]);
      } else {
        fuzz.crashes++;
        check('fuzz (ingest)', [`${path}: ${(err as Error).message}`]);
      }
    }
  }

  say(`fuzzing the running loop with ${plan.loopRuns} files through the worker processes`);
  await a.createLine('fuzz-loop');
  // A line set up for feedback (a stable version to adapt), trained beside the fuzzed drops.
  await a.createLine('fuzz-feedback');
  const feedbackBase = await a.send('fuzz-feedback', a.writeDrop('feedback-base.jsonl', 5));
  const pids = a.live().map((w) => w.child.pid);
  const loopSent: { line: string; digest: string; input: FuzzDrop }[] = [];
  for (const [i, input] of fc.sample(anyDrop, { numRuns: plan.loopRuns, seed: 777 }).entries()) {
    const digest = sha256Hex(input.bytes);
    if (loopSent.some((d) => d.digest === digest)) continue;
    const file = a.writeRaw(`loop-${i}-${input.file.replace(/[^A-Za-z0-9._-]/g, '_')}`, input.bytes);
    await a.send('fuzz-loop', file);
    loopSent.push({ line: 'fuzz-loop', digest, input });
  }
  // A drop whose recipe asks far past its line's limits (issue 33, item 2): refused at ingest, naming the limit.
  const greedyText = Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `a drop that asks for too much, line ${i}.` })).join('\n') + '\n';
  const greedy = await a.send('fuzz-loop', a.writeRaw('loop-over-limit.jsonl', greedyText), { recipe: { steps: 320_000, checkpointEvery: 1 } });
  const loopDone = await waitForDrops(a, [...loopSent, { line: 'fuzz-loop', digest: greedy.digest }], 900_000);
  const overLimit = loopDone.get(`fuzz-loop/${greedy.digest}`)!;
  overLimitDrop = { verdict: overLimit.verdict, reason: overLimit.reason };
  if (overLimit.verdict !== 'rejected' || !/over the line's limit maxSteps/.test(overLimit.reason))
    check('fuzz (loop)', [`a drop over its line's limits ended ${overLimit.verdict}: ${overLimit.reason}`]);
  // Feedback whose verifier backtracks catastrophically under a JS RegExp (^(.+)+\0 on answers of up to 28
  // characters: minutes per check): on RE2 it is accepted and judged by the gate within seconds, not a hang.
  const base = (await waitForDrops(a, [{ line: 'fuzz-feedback', digest: feedbackBase.digest }], 600_000)).get(`fuzz-feedback/${feedbackBase.digest}`)!;
  if (base.verdict !== 'promoted') check('fuzz (loop)', [`the feedback line's first drop ended ${base.verdict}: ${base.reason}`]);
  else {
    const evil = Array.from({ length: 10 }, (_, i) => JSON.stringify({ prompt: `q${i}:`, verifier: { kind: 'regex', pattern: '^(.+)+\u0000' }, gold: { kind: 'exact', answer: `${i}` } }));
    const started = Date.now();
    const sent = await a.send('fuzz-feedback', a.writeRaw('loop-evil-verifier.jsonl', evil.join('\n') + '\n'), {
      kind: 'feedback',
      recipe: { rl: { steps: 2, checkEvery: 1, promptsPerStep: 2, samplesPerPrompt: 4, maxTokens: 28 } },
    });
    const c = (await waitForDrops(a, [{ line: 'fuzz-feedback', digest: sent.digest }], 300_000)).get(`fuzz-feedback/${sent.digest}`)!;
    evilVerifier = { verdict: c.verdict, seconds: Math.round((Date.now() - started) / 100) / 10, reason: c.reason };
    if ((c.verdict !== 'promoted' && c.verdict !== 'rejected') || !/rl:/.test(c.reason) || evilVerifier.seconds > 60)
      check('fuzz (loop)', [`feedback with a catastrophic-backtracking verifier ended ${c.verdict} after ${evilVerifier.seconds} s: ${c.reason}`]);
  }
  for (const d of loopSent) {
    fuzz.throughLoop++;
    const c = loopDone.get(`fuzz-loop/${d.digest}`)!;
    if (c.verdict === 'quarantined') fuzz.quarantined++;
    else if (c.verdict === 'promoted' || c.verdict === 'rejected') fuzz.accepted++;
    else check('fuzz (loop)', [`a fuzzed drop ended ${c.verdict}: ${c.reason}`]);
  }
  const lost = pids.filter((p) => !a.live().some((w) => w.child.pid === p));
  if (lost.length) {
    fuzz.crashes += lost.length;
    check('fuzz (loop)', [`worker processes ${lost.join(', ')} died`]);
  }
  merge(a.ledger);
} finally {
  await a.close();
}

// ---- 5. the load run on a fresh stack -------------------------------------------------------------------------
say(`load: ${plan.loadLines} lines x ${plan.loadDrops} drops with worker restarts`);
const b = await stack('load', 2);
let load: FaultRunResult | undefined;
try {
  load = await loadWithRestarts(b, {
    lines: plan.loadLines,
    drops: plan.loadDrops,
    steps: 40,
    badEvery: 7,
    destructiveEvery: 5,
    // After the k-th completed cycle, spread over the run: injected in every run, however fast the machine.
    restarts: quick ? 3 : 6,
    timeoutMs: 30 * 60_000,
  });
  runs.push(load);
  check('worker-restart-under-load', load.problems);
  merge(b.ledger);
} finally {
  await b.close();
}

// ---- 6. network --------------------------------------------------------------------------------------------------
for (const w of watches) w.stop();
const attempts = readJsonLines<{ api: string; host: string | null; port: number | null; loopback: boolean }>(netLog);
const outboundHook = attempts.filter((x) => !x.loopback);
const outboundProc: Endpoint[] = watches.flatMap((w) => w.outbound());
check(
  'network (hook)',
  outboundHook.slice(0, 5).map((x) => `${x.api} ${x.host}:${x.port}`),
);
check(
  'network (/proc)',
  outboundProc.slice(0, 5).map((e) => `${e.proto} ${e.local} -> ${e.remote} (pid ${e.pid})`),
);
if (userInfo().uid === 0 && hasUnshare()) {
  say('a whole cycle in a network namespace with loopback only');
  netns = await netnsCycle();
  if (netns !== 'promoted') check('network (netns)', [`the cycle in a loopback-only namespace ended: ${netns}`]);
} else netns = 'skipped (needs root and unshare)';

// ---- summary -------------------------------------------------------------------------------------------------
const sum = (o: Record<string, number>) => Object.values(o).reduce((x, y) => x + y, 0);
const dropsIn = runs.reduce((n, r) => n + r.accounting.dropsIn, 0) + pg.length;
const accounted = runs.reduce((n, r) => n + r.accounting.accountedFor, 0) + pg.filter((p) => p.verdict === 'promoted').length;
const duplicates =
  runs.reduce((n, r) => n + r.duplicates.duplicates.length, 0) +
  pg.reduce((n, p) => n + p.problems.filter((x) => /times|twice|audit entries/.test(x)).length, 0);
const byStatus: Record<string, number> = {};
for (const r of runs) for (const [k, v] of Object.entries(r.accounting.postgres)) byStatus[k] = (byStatus[k] ?? 0) + v;
// The promotion scenario's drop (one per round) ends accepted when it was promoted.
for (const p of pg) if (p.verdict === 'promoted') byStatus.accepted = (byStatus.accepted ?? 0) + 1;
// Fails on anything a scenario found broken and on any fault kind that was not injected (or not survived).
const verdict = chaosVerdict(ledger, broken);
const summary = {
  faults: ledger.table(),
  trainingResume: trainingKills.map((k) => ({
    killedAtStep: k.killedAtStep,
    resumedFromCheckpoint: k.resumedFromCheckpoint,
    stepsRedone: k.stepsRedone,
    checkpointEvery: k.checkpointEvery,
    reportedResumedFromStep: k.reportedResumedFromStep,
    recoverySeconds: Math.round(k.recoverySeconds),
  })),
  drops: { in: dropsIn, accountedFor: accounted, byStatus, duplicates },
  fuzz: {
    tried: fuzz.parsed + fuzz.ingested + fuzz.throughLoop,
    parser: fuzz.parsed,
    ingest: fuzz.ingested,
    loop: fuzz.throughLoop,
    crashes: fuzz.crashes,
    quarantined: fuzz.quarantined,
    // A feedback drop whose verifier is ^(.+)+\0 (catastrophic backtracking under a JS RegExp): its verdict and time.
    overLimitDrop: overLimitDrop ?? 'not run',
    evilVerifier: evilVerifier ?? 'not run',
  },
  traversal: { attempts: traversal.attempts, byTarget: traversal.byTarget, escapes: traversal.escapes.length },
  network: {
    outbound: outboundHook.length + outboundProc.length,
    hookAttempts: attempts.length,
    socketsSeen: watches.reduce((n, w) => n + w.seen.size, 0),
    procWatch: procNetAvailable() ? 'on' : 'unavailable',
    netnsCycle: netns,
  },
  driver: { cutTransactions: driver.caught, driverCrashes: driver.driverCrashes },
  postgres: pg.map((p) => ({
    downSeconds: Math.round(p.downSeconds),
    stormMoves: p.storm.moves,
    interrupted: p.storm.interrupted,
    driverCrashesCaught: p.storm.driverCrashes,
  })),
  load: load && {
    lines: plan.loadLines,
    dropsPerLine: plan.loadDrops,
    restarts: load.detail.restarts,
    restartsAfterCycles: (load.detail.restartsAt as LoadRestart[]).map((r) => r.completed),
    cycles: load.accounting.cycles,
    minutes: +(load.seconds / 60).toFixed(1),
    cyclesPerMinute: +load.cyclesPerMinute.toFixed(1),
    postgres: load.accounting.postgres,
    temporal: load.accounting.temporal,
    dropFolder: load.accounting.dropsIn,
  },
  broken: verdict.problems,
  notInjected: verdict.notInjected,
  minutes: +((Date.now() - started) / 60_000).toFixed(1),
};

if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  const out: string[] = [];
  out.push('', `perennial chaos summary (${quick ? 'quick' : 'full'} run, ${summary.minutes} min)`, '');
  out.push('faults                          injected  survived');
  for (const [k, c] of Object.entries(summary.faults)) out.push(`  ${k.padEnd(30)}${String(c.injected).padStart(8)}${String(c.survived).padStart(10)}`);
  out.push('');
  for (const k of summary.trainingResume)
    out.push(
      `training resume: killed at ~step ${k.killedAtStep}, resumed from checkpoint ${k.resumedFromCheckpoint} (reported ${k.reportedResumedFromStep}), ${k.stepsRedone} steps redone (interval ${k.checkpointEvery}), recovered in ${k.recoverySeconds} s`,
    );
  out.push(
    `drops: ${summary.drops.in} in, ${summary.drops.accountedFor} accounted for in the drop folder, PostgreSQL and Temporal (${Object.entries(byStatus)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}); duplicates ${duplicates}`,
  );
  out.push(
    `fuzz: ${summary.fuzz.tried} inputs tried (parser ${fuzz.parsed}, ingest ${fuzz.ingested}, running loop ${fuzz.throughLoop}); crashes ${fuzz.crashes}; quarantined ${fuzz.quarantined}`,
  );
  out.push(
    `traversal: ${traversal.attempts} attempts (${Object.entries(traversal.byTarget)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}); escapes ${traversal.escapes.length}`,
  );
  out.push(
    `network: outbound connections ${summary.network.outbound} (Node-level attempts seen ${attempts.length}, sockets seen via /proc ${summary.network.socketsSeen}${procNetAvailable() ? '' : ' (unavailable)'}; cycle in a loopback-only network namespace: ${netns})`,
  );
  for (const p of summary.postgres)
    out.push(
      `postgres: down ${p.downSeconds} s during a promotion; ${p.stormMoves} channel moves, ${p.interrupted} cut mid-flight and retried; postgres.js crashes caught: ${p.driverCrashesCaught}`,
    );
  out.push(`postgres driver: ${driver.caught} transactions on a cut connection failed catchably; ${driver.driverCrashes} threw out of a timer`);
  if (summary.load)
    out.push(
      `load: ${summary.load.lines} lines x ${summary.load.dropsPerLine} drops, ${summary.load.restarts} worker restarts (after cycles ${summary.load.restartsAfterCycles.join(', ') || '-'} of ${summary.load.dropFolder}): ${summary.load.cycles} cycles in ${summary.load.minutes} min = ${summary.load.cyclesPerMinute} cycles/min (drop folder ${summary.load.dropFolder}, PostgreSQL ${sum(summary.load.postgres)}, Temporal ${sum(summary.load.temporal)})`,
    );
  out.push('');
  out.push(...verdictLines(verdict));
  console.log(out.join('\n'));
}
if (keep) say(`kept ${base}`);
process.exit(verdictExitCode(verdict));

function hasUnshare(): boolean {
  try {
    execFileSync('unshare', ['--net', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Runs this script with --netns-cycle inside a new network namespace that has only loopback. */
function netnsCycle(): Promise<string> {
  return new Promise((ok) => {
    const child = spawn(
      'unshare',
      [
        '--net',
        '--',
        'sh',
        '-c',
        `ip link set lo up && exec "${process.execPath}" --import tsx "${join(PROJECT_ROOT, 'scripts', 'chaos.ts')}" --netns-cycle "${base}"`,
      ],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGTERM'), 10 * 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        ok((JSON.parse(last) as { verdict: string }).verdict);
      } catch {
        ok(`failed (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`);
      }
    });
  });
}
