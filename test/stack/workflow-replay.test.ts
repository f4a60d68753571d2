/**
 * Determinism guard: committed histories of the line and cycle workflows (test/fixtures/histories/) are
 * replayed against the current workflow bundle. A change that would make a running line or cycle take another
 * path on replay (reordered or added commands, a changed timer, a new activity before an old one) fails here,
 * before it can break the long-lived `line:<name>` workflows of an installation.
 *
 * Re-record after an intended, versioned change (with `patched()`, or once nothing old runs any more):
 *   PERENNIAL_RECORD_HISTORIES=1 npx vitest run test/stack/workflow-replay.test.ts
 * or record only the histories that have no file yet (a new workflow path), keeping the older ones as they are
 * (they hold the paths before each patch, which is what the patches must keep):
 *   PERENNIAL_RECORD_HISTORIES=new npx vitest run test/stack/workflow-replay.test.ts
 * The recording runs the same workflows over stub activities (test/helpers/stub-worker.ts) on the dev server.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { cycleWorkflow } from '../../workflows/cycle-workflow.ts';
import type { lineWorkflow } from '../../workflows/line-workflow.ts';
import type { upgradeWorkflow } from '../../workflows/upgrade-workflow.ts';
import {
  approveUpdate,
  cycleStateQuery,
  dataDropSignal,
  regressionSignal,
  rollbackUpdate,
  stateQuery,
  type RegressionReport,
} from '../../schemas/contracts/messages.ts';
import type { DropRequest } from '../../schemas/io.ts';
import { historyFromJson, historyToJson } from '../helpers/histories.ts';
import { TRAINED, dropRequest, installQuietRuntime, moved, promotingStubs, startStubHarness, until, type StubActivities } from '../helpers/stub-worker.ts';
import type { RlRecord } from '../../activities/types.ts';
import { RL_GUARD_DEFAULTS } from '../../domain/rl-guards.ts';
import { RL_DEFAULTS } from '../../model/rl.ts';
import { type Trajectory, scheduleKey } from '../../domain/recipe-search.ts';
import { DEFAULT_RECIPE } from '../../schemas/defaults.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'histories');
const RECORD = process.env.PERENNIAL_RECORD_HISTORIES === '1' || process.env.PERENNIAL_RECORD_HISTORIES === 'new';
const ONLY_NEW = process.env.PERENNIAL_RECORD_HISTORIES === 'new';
/** The workflow id each history ran under (histories recorded before it replay under their file name). */
const IDS = 'ids.json';

describe('workflow replay', () => {
  beforeAll(installQuietRuntime);

  it.runIf(RECORD)('records the histories of the line and cycle workflows', async () => {
    if (!ONLY_NEW) rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    const harness = await startStubHarness();
    // The workflow id of each history goes into ids.json: a workflow that derives ids from its own (the search child
    // `<cycle id>:search`) must replay under the id it ran with.
    const idsFile = join(DIR, IDS);
    const ids: Record<string, string> = existsSync(idsFile) ? JSON.parse(readFileSync(idsFile, 'utf8')) : {};
    const save = async (name: string, handle: WorkflowHandle) => {
      writeFileSync(join(DIR, `${name}.json`), historyToJson(await handle.fetchHistory()));
      ids[name] = handle.workflowId;
      writeFileSync(idsFile, `${JSON.stringify(ids, Object.keys(ids).sort(), 2)}\n`);
    };
    // Each recording with the files it writes: in `new` mode only those with a missing file run.
    const recordings: [string[], (h: Harness, s: Save) => Promise<void>][] = [
      [['line-first-run', 'line-continued-run', 'cycle-approved', 'cycle-promoted'], recordLine],
      [['cycle-rolled-back'], recordRollback],
      [['cycle-training-failed'], recordDiverged],
      [['cycle-feedback'], recordFeedback],
      [['upgrade-one-line', 'cycle-transfer'], recordUpgrade],
      [['cycle-recipe-search', 'search-recipe'], recordSearch],
      [['cycle-search-repair', 'search-repair'], recordRepair],
      [['cycle-search-stopped', 'search-stopped'], recordStopEarly],
      [['cycle-search-budget', 'search-budget'], recordBudget],
    ];
    try {
      for (const [files, record] of recordings) if (!ONLY_NEW || files.some((f) => !existsSync(join(DIR, `${f}.json`)))) await record(harness, save);
    } finally {
      await harness.close();
    }
  });

  it('replays every committed history against the current workflow code without a determinism error', async () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.json') && f !== IDS);
    expect(files.map((f) => f.split('-')[0])).toEqual(expect.arrayContaining(['line', 'cycle']));
    const ids: Record<string, string> = existsSync(join(DIR, IDS)) ? JSON.parse(readFileSync(join(DIR, IDS), 'utf8')) : {};
    const histories = files.map((f) => ({
      workflowId: ids[basename(f, '.json')] ?? basename(f, '.json'),
      history: historyFromJson(JSON.parse(readFileSync(join(DIR, f), 'utf8'))),
    }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: inject('workflowBundlePath') } }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(files.length);
  });
});

type Harness = Awaited<ReturnType<typeof startStubHarness>>;
type Save = (name: string, handle: WorkflowHandle) => Promise<void>;

/**
 * A line's life over two runs: a first cycle waits for approval while a second drop, a duplicate and a
 * rollback arrive; it is approved and promoted; the line continues as new with the queued drop, whose cycle
 * promotes, and continues as new again.
 */
async function recordLine(harness: Harness, save: Save) {
  const line = 'replay-line';
  // The line's own snapshot and the first cycle's require approval; the second cycle's does not.
  const stubs = promotingStubs(line, (n) => (n <= 2 ? { requireApproval: true, approvalTimeout: '1h' } : {}));
  await harness.withStubs(line, stubs, async (run) => {
    const [a, b] = [dropRequest('a'), dropRequest('b')];
    const handle = await run.client.workflow.signalWithStart<typeof lineWorkflow, [DropRequest]>('lineWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `line:${line}`,
      args: [{ line }],
      signal: dataDropSignal,
      signalArgs: [a],
    });
    const first = run.client.workflow.getHandle<typeof cycleWorkflow>(`cycle:${line}:2`);
    await until(async () => ((await first.query(cycleStateQuery)).awaitingApproval ? true : undefined));
    await handle.signal(dataDropSignal, b);
    await handle.signal(dataDropSignal, a);
    await handle.executeUpdate(rollbackUpdate, { args: [{ to: 1, reason: 'recorded rollback', actor: 'ops' }] });
    await first.executeUpdate(approveUpdate, { args: [{ version: 2, actor: 'rev', reason: 'recorded approval' }] });
    await until(async () => {
      const s = await handle.query(stateQuery);
      return s.recent.length === 2 && s.current === null ? true : undefined;
    });
    const firstRun = run.client.workflow.getHandle(`line:${line}`, handle.signaledRunId);
    const continued = (await firstRun.fetchHistory()).events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
    expect(continued).toBeTruthy();
    const secondRun = run.client.workflow.getHandle(`line:${line}`, continued!);
    await until(async () => ((await secondRun.describe()).status.name === 'CONTINUED_AS_NEW' ? true : undefined));
    await save('line-first-run', firstRun);
    await save('line-continued-run', secondRun);
    await save('cycle-approved', first);
    await save('cycle-promoted', run.client.workflow.getHandle(`cycle:${line}:3`));
    await handle.terminate('recorded');
  });
}

/** A cycle whose canary is rolled back on a confirmed regression report. */
async function recordRollback(harness: Harness, save: Save) {
  const line = 'replay-rollback';
  const stubs = promotingStubs(line, () => ({ canaryWindow: '1h' }));
  let evaluations = 0;
  stubs.evaluateVersions = async ({ versions }) =>
    Object.fromEntries(
      versions.map((v, i) => [v, i === 0 ? { old: { loss: ++evaluations > 1 ? 3 : 2 }, new: { loss: 1 } } : { old: { loss: 2 }, new: { loss: 2 } }]),
    );
  await harness.withStubs(line, stubs, async (run) => {
    const handle = await run.client.workflow.signalWithStart<typeof cycleWorkflow, [RegressionReport]>('cycleWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `cycle:${line}:2`,
      args: [{ line, drop: dropRequest('c'), parentId: `line:${line}` }],
      signal: regressionSignal,
      signalArgs: [{ reason: 'recorded regression', actor: 'ops' }],
    });
    expect((await handle.result()).verdict).toBe('rolled-back');
    await save('cycle-rolled-back', handle);
  });
}

/** A cycle whose training fails in a way no retry can fix. */
async function recordDiverged(harness: Harness, save: Save) {
  const line = 'replay-diverged';
  const stubs: StubActivities = {
    ...promotingStubs(line),
    trainCandidate: async () => {
      throw ApplicationFailure.create({ message: 'loss diverged at step 4 (NaN)', type: 'TrainingDivergedError', nonRetryable: true });
    },
    closeFailedCycle: async () => ({ dropFailed: true }),
    moveChannel: async (req) => moved(line, req.channel, null, req.to),
  };
  await harness.withStubs(line, stubs, async (run) => {
    const handle = await run.client.workflow.start<typeof cycleWorkflow>('cycleWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `cycle:${line}:2`,
      args: [{ line, drop: dropRequest('d'), parentId: `line:${line}` }],
    });
    expect((await handle.result()).verdict).toBe('rejected');
    await save('cycle-training-failed', handle);
  });
}

/** A feedback cycle (issue 16): an RL update from the stable version, its run recorded, the rl checks in the gate. */
async function recordFeedback(harness: Harness, save: Save) {
  const line = 'replay-feedback';
  const checks = [
    { step: 0, reward: 0.2, gold: 0.2, kl: 0 },
    { step: 5, reward: 0.5, gold: 0.45, kl: 0.1 },
  ];
  const rl: RlRecord = {
    recipe: { ...RL_DEFAULTS, steps: 5, seed: 1 },
    guard: { ...RL_GUARD_DEFAULTS, klBudget: RL_DEFAULTS.klBudget },
    checks,
    curve: [{ step: 5, reward: 0.5, kl: 0.1 }],
    stoppedBy: 'steps',
    finalKl: 0.1,
    verdict: { accept: true, reasons: [] },
    rewardStats: { heldOutRewardBefore: 0.2, heldOutRewardAfter: 0.5 },
  };
  const stubs: StubActivities = {
    ...promotingStubs(line),
    ingestDrop: async ({ request }) => ({ status: 'accepted', digest: request.digest, counts: { train: 4, heldOut: 1, probes: 0 }, suites: [] }),
    trainRl: async () => ({ training: TRAINED, rl }),
    recordRlRun: async () => ({ recorded: true as const }),
  };
  await harness.withStubs(line, stubs, async (run) => {
    const handle = await run.client.workflow.start<typeof cycleWorkflow>('cycleWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `cycle:${line}:2`,
      args: [{ line, drop: { ...dropRequest('f'), kind: 'feedback' }, parentId: `line:${line}` }],
    });
    expect((await handle.result()).verdict).toBe('promoted');
    expect(run.names()).toContain('trainRl');
    await save('cycle-feedback', handle);
  });
}

/** A foundation upgrade (issue 13): the upgrade workflow and its one child, a transfer cycle that is promoted and adopts the new base. */
async function recordUpgrade(harness: Harness, save: Save) {
  const line = 'replay-transfer';
  const foundation = 'replay-base';
  // Activities route by workflow id: the upgrade's (`upgrade:<foundation>@2`) and the transfer cycle's (the line's).
  await harness.withStubs(
    `${foundation}@2`,
    { upgradePlan: async () => ({ lines: [line] }), sealAuditLog: async () => ({ treeSize: 1, rootHash: '0'.repeat(64) }) },
    async () => undefined,
  );
  const stubs: StubActivities = {
    ...promotingStubs(line),
    transferContext: async () => ({ oldFoundation: { line: foundation, version: 1 }, rebase: false, suites: [], replay: [] }),
    adoptFoundation: async () => undefined,
  };
  await harness.withStubs(line, stubs, async (run) => {
    const handle = await run.client.workflow.start<typeof upgradeWorkflow>('upgradeWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `upgrade:${foundation}@2`,
      args: [{ foundation, version: 2 }],
    });
    const result = await handle.result();
    expect(result.done.map((d) => [d.line, d.verdict])).toEqual([[line, 'promoted']]);
    expect(run.names()).toContain('adoptFoundation');
    await save('upgrade-one-line', handle);
    await save('cycle-transfer', run.client.workflow.getHandle(result.done[0]!.cycleId!));
  });
}

/** A cycle with recipe `auto` (issue 15): its search child runs trials (halving, resumes), records them, and the candidate resumes from the winner. */
async function recordSearch(harness: Harness, save: Save) {
  await recordSearchCycle(harness, save, {
    line: 'replay-search',
    seed: 's',
    history: [],
    // Trials pass from a quarter of the base recipe's horizon on: the first bracket (an eighth) fails, the second passes.
    metrics: (input) => ({ old: { loss: 2 }, new: { loss: input.stopAt >= Math.round(input.recipe.steps / 2) && input.recipe.steps >= 25 ? 0.5 : 1.99 } }),
    check: (run) => expect(run.inputs('trainCandidate')[0]?.resumeFrom).toBeTruthy(),
    names: ['cycle-recipe-search', 'search-recipe'],
  });
}

/** A line whose recipe passed before; now every trial learns the new suite, and below replay 0.6 loses the old one (the champion's loss there is 2). */
const forgets = {
  history: [{ recipe: {}, features: { trainRecords: 10, newSuites: 1 }, margin: 0.1 }],
  metrics: (input: TrialInput) => ({ old: { loss: input.recipe.replayRatio >= 0.6 ? 2 : 3 }, new: { loss: 0.5 } }),
};

/**
 * A search whose warm start (the line's recipe, chosen on an earlier drop) forgets the old suite, and whose repair
 * with more replay passes and is promoted: the path behind patched('search-repair-v1').
 */
async function recordRepair(harness: Harness, save: Save) {
  await recordSearchCycle(harness, save, {
    line: 'replay-repair',
    seed: 'r',
    ...forgets,
    check: (run) => expect(run.inputs('runRecipeTrial').map((t) => t.recipe.replayRatio)).toEqual([0.3, 0.6]),
    names: ['cycle-search-repair', 'search-repair'],
  });
}

/**
 * A search whose warm start is judged on its way and stopped at its first judged step, below the two passing
 * updates of the line's record, and the cycle rejected: the path behind patched('search-stop-early-v1').
 */
async function recordStopEarly(harness: Harness, save: Save) {
  // Two passing updates of the line's recipe (the stub line's DEFAULT_RECIPE, 200 steps: judged at 17, 33 and 67).
  const passing = [0.4, 0.5].map((m) => ({ schedule: scheduleKey(DEFAULT_RECIPE), points: [17, 33, 67].map((step) => ({ step, margin: m })) }));
  await recordSearchCycle(harness, save, {
    line: 'replay-stopped',
    seed: 'p',
    history: [{ recipe: {}, features: { trainRecords: 10, newSuites: 1 }, margin: 0.1 }],
    passing,
    // The new suite barely moves (the gate asks 2% below the champion's 2): margin about -0.015 at every step.
    metrics: () => ({ old: { loss: 2 }, new: { loss: 1.99 } }),
    check: (run) => expect(run.inputs('runRecipeTrial').map((t) => t.stopAt)).toEqual([17]),
    verdict: 'rejected',
    names: ['cycle-search-stopped', 'search-stopped'],
  });
}

/**
 * The repair's setup (a warm start of the line's full-length recipe that forgets; with more replay it would pass)
 * under the default budget of 1.5x that recipe: the repair does not fit after the warm start, and the cycle is
 * rejected on the budget. The path behind patched('search-budget-default-v1'); before it (2x) the repair ran.
 */
async function recordBudget(harness: Harness, save: Save) {
  await recordSearchCycle(harness, save, {
    line: 'replay-budget',
    seed: 'g',
    ...forgets,
    // The warm start alone, judged on its way (no passing update on record: none is stopped), and nothing after it.
    check: (run) =>
      expect(run.inputs('runRecipeTrial').map((t) => [t.recipe.replayRatio, t.stopAt])).toEqual([0.3, 0.3, 0.3, 0.3].map((r, i) => [r, [17, 33, 67, 200][i]])),
    verdict: 'rejected',
    names: ['cycle-search-budget', 'search-budget'],
  });
}

type TrialInput = Parameters<StubActivities['runRecipeTrial'] & {}>[0];
type StubRun = Parameters<Parameters<Harness['withStubs']>[2]>[0];

/** One promoted cycle of a line with recipe `auto` over stub trials scored by `metrics`; saves the cycle's and its search's history. */
async function recordSearchCycle(
  harness: Harness,
  save: Save,
  o: {
    line: string;
    seed: string;
    history: Awaited<ReturnType<StubActivities['recipeSearchContext'] & {}>>['history'];
    passing?: Trajectory[];
    metrics: (input: TrialInput) => Record<string, { loss: number }>;
    check: (run: StubRun) => void;
    verdict?: 'promoted' | 'rejected';
    names: [cycle: string, search: string];
  },
) {
  const { line } = o;
  const stubs: StubActivities = {
    ...promotingStubs(line),
    recipeSearchContext: async () => ({ flopsPerStep: 1e6, history: o.history, historyFrom: o.history.length ? [line] : [], passing: o.passing ?? [] }),
    runRecipeTrial: async (input) => ({
      steps: input.stopAt,
      flops: input.stopAt * 1e6,
      wallMs: 1,
      checkpoint: createHash('sha256').update(`checkpoint ${input.key} ${input.stopAt}`).digest('hex'),
      weights: createHash('sha256').update(`weights ${input.key} ${input.stopAt}`).digest('hex'),
      finalLoss: 1,
      metrics: o.metrics(input),
    }),
    recordRecipeTrials: async (input) => ({ recorded: input.trials.length }),
  };
  await harness.withStubs(line, stubs, async (run) => {
    const handle = await run.client.workflow.start<typeof cycleWorkflow>('cycleWorkflow', {
      taskQueue: run.taskQueue,
      workflowId: `cycle:${line}:2`,
      args: [{ line, drop: { ...dropRequest(o.seed), recipe: { search: {} } }, parentId: `line:${line}` }],
    });
    const summary = await handle.result();
    expect(summary.verdict, summary.reason).toBe(o.verdict ?? 'promoted');
    o.check(run);
    await save(o.names[0], handle);
    await save(o.names[1], run.client.workflow.getHandle(`cycle:${line}:2:search`));
  });
}
