/**
 * Every path of `cycleWorkflow` with stub activities: the real workflow code on the real Temporal dev server,
 * no database and no training, so each path costs a fraction of a second of workflow time.
 */
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/types.ts';
import { ChannelConflictError } from '../../schemas/contracts/errors.ts';
import type { cycleWorkflow } from '../../workflows/cycle-workflow.ts';
import { approveUpdate, cycleStateQuery, regressionSignal, type CycleInput, type RegressionReport } from '../../schemas/contracts/messages.ts';
import type { LineSpec } from '../../schemas/io.ts';
import {
  TRAINED,
  digestOf,
  dropRequest,
  moved,
  snapshotWithChampion,
  startStubHarness,
  suite,
  until,
  type StubActivities,
  type StubHarness,
  type StubRun,
} from '../helpers/stub-worker.ts';

let harness: StubHarness;
beforeAll(async () => void (harness = await startStubHarness()));
afterAll(async () => harness?.close());

const suffix = Date.now().toString(36);
type Measured = Awaited<ReturnType<Activities['evaluateVersions']>>;

/** Candidate 2 improves the new suite and holds the old one against champion 1: the gate passes. */
const PASSING: Measured = { 2: { old: { loss: 2.0 }, new: { loss: 1.0 } }, 1: { old: { loss: 2.0 }, new: { loss: 2.0 } } };
/** Candidate 2 learned nothing on the new suite: the gate fails on `new`. */
const NO_GAIN: Measured = { 2: { old: { loss: 2.0 }, new: { loss: 2.0 } }, 1: { old: { loss: 2.0 }, new: { loss: 2.0 } } };
/** Re-measured during canary: candidate 2 lost what champion 1 knew on `old`. */
const REGRESSED: Measured = { 2: { old: { loss: 3.0 }, new: { loss: 1.0 } }, 1: { old: { loss: 2.0 }, new: { loss: 2.0 } } };

/** A cycle whose every step succeeds; a test replaces the steps its path changes. */
function stubs(line: string, promotion: Partial<LineSpec['promotion']> = {}, evaluations: Measured[] = [PASSING]): StubActivities {
  let evaluated = 0;
  return {
    lineSnapshot: async () => snapshotWithChampion(line, promotion),
    ingestDrop: async ({ request }) => ({
      status: 'accepted',
      digest: request.digest,
      counts: { train: 10, heldOut: 2, probes: 0 },
      suites: [suite(line, 'new', request.digest.slice(0, 1))],
    }),
    trainCandidate: async () => TRAINED,
    registerCandidate: async () => ({ version: 2, candidateMove: moved(line, 'candidate', null, 2) }),
    evaluateVersions: async () => evaluations[Math.min(evaluated++, evaluations.length - 1)]!,
    recordGate: async () => ({ id: 7 }),
    moveChannel: async (req) => moved(line, req.channel, req.channel === 'stable' ? 1 : null, req.to, 4),
    settleCanary: async () => moved(line, 'canary', 2, 1, 5),
    setDropStatus: async () => undefined,
    recordEvent: async () => undefined,
    closeFailedCycle: async () => ({ dropFailed: true }),
  };
}

function cycleInput(line: string, seed = 'b'): CycleInput {
  return { line, drop: dropRequest(seed), parentId: `line:${line}` };
}

function execute(run: StubRun, line: string) {
  return run.client.workflow.execute<typeof cycleWorkflow>('cycleWorkflow', {
    taskQueue: run.taskQueue,
    workflowId: `cycle:${line}:2`,
    args: [cycleInput(line)],
  });
}

describe('cycleWorkflow with stub activities', () => {
  it('promotes a candidate that passes the gate: canary, then stable by compare-and-swap on the snapshot epoch', async () => {
    const line = `wf-promote-${suffix}`;
    await harness.withStubs(line, stubs(line), async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'promoted', version: 2, channels: { stable: 2, canary: 2, candidate: 2 } });
      expect(result.decision?.verdict).toBe('pass');
      expect(run.names()).toEqual([
        'lineSnapshot',
        'ingestDrop',
        'trainCandidate',
        'registerCandidate',
        'evaluateVersions',
        'recordGate',
        'moveChannel',
        'moveChannel',
      ]);
      const [train] = run.inputs('trainCandidate');
      expect(train).toMatchObject({ line, init: { line, version: 1 }, dropDigest: digestOf('b'), replay: [digestOf('a')], progressTo: `line:${line}` });
      expect(run.inputs('evaluateVersions')[0]).toMatchObject({ versions: [2, 1], suites: [{ name: 'old' }, { name: 'new' }] });
      const [canary, stable] = run.inputs('moveChannel');
      expect(canary).toMatchObject({ channel: 'canary', to: 2, gateDecisionId: 7, actor: 'perennial' });
      expect(stable).toMatchObject({ channel: 'stable', to: 2, expectedEpoch: 3, gateDecisionId: 7 });
      expect(stable!.requestKey).toBe(`cycle:${line}:2:${digestOf('b').slice(0, 16)}:stable`);
    });
  });

  it('on a line that gates on plasticity, measures the candidate after evaluating it and rejects it below minPlasticity, naming the number', async () => {
    const line = `wf-plasticity-${suffix}`;
    const base = stubs(line);
    const plastic: StubActivities = {
      ...base,
      lineSnapshot: async () => {
        const snap = snapshotWithChampion(line);
        return { ...snap, spec: { ...snap.spec, gateRules: { ...snap.spec.gateRules, minPlasticity: 0.9 } } };
      },
      measurePlasticity: async () => ({ ratio: 0.42 }) as Awaited<ReturnType<Activities['measurePlasticity']>>,
    };
    await harness.withStubs(line, plastic, async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'rejected', version: 2, reason: 'failed on plasticity 0.4200 (needed >= 0.9000 of a fresh model)' });
      expect(run.names()).toEqual(['lineSnapshot', 'ingestDrop', 'trainCandidate', 'registerCandidate', 'evaluateVersions', 'measurePlasticity', 'recordGate']);
      expect(run.inputs('measurePlasticity')).toEqual([{ line, version: 2, seed: expect.any(Number) }]);
      expect(run.inputs('recordGate')[0]!.decision.plasticity).toMatchObject({ ratio: 0.42, bound: 0.9, pass: false });
    });
  });

  it("below a line's plasticityFloor, measures the starting version, trains with interventions and records them in the recipe", async () => {
    const line = `wf-floor-${suffix}`;
    const base = stubs(line);
    const ratios: Record<number, number> = { 1: 0.6, 2: 0.97 };
    const defended: StubActivities = {
      ...base,
      lineSnapshot: async () => {
        const snap = snapshotWithChampion(line);
        return { ...snap, spec: { ...snap.spec, recipe: { ...snap.spec.recipe, plasticityFloor: 0.8 } } };
      },
      measurePlasticity: async ({ version }) => ({ ratio: ratios[version]! }) as Awaited<ReturnType<Activities['measurePlasticity']>>,
    };
    await harness.withStubs(line, defended, async (run) => {
      const result = await execute(run, line);
      expect(result.verdict).toBe('promoted');
      expect(run.inputs('measurePlasticity').map((i) => i.version)).toEqual([1, 2]);
      const interventions = ['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm'];
      expect(run.inputs('trainCandidate')[0]!.recipe).toMatchObject({ plasticityFloor: 0.8, interventions, l2Anchor: 'init', rewarm: true });
      expect(run.inputs('registerCandidate')[0]!.recipe).toMatchObject({ interventions, l2Anchor: 'init' });
    });
  });

  it('at or above the floor, trains without interventions', async () => {
    const line = `wf-floor-ok-${suffix}`;
    const defended: StubActivities = {
      ...stubs(line),
      lineSnapshot: async () => {
        const snap = snapshotWithChampion(line);
        return { ...snap, spec: { ...snap.spec, recipe: { ...snap.spec.recipe, plasticityFloor: 0.8 } } };
      },
      measurePlasticity: async () => ({ ratio: 0.95 }) as Awaited<ReturnType<Activities['measurePlasticity']>>,
    };
    await harness.withStubs(line, defended, async (run) => {
      expect((await execute(run, line)).verdict).toBe('promoted');
      expect(run.inputs('trainCandidate')[0]!.recipe.interventions).toBeUndefined();
    });
  });

  it('rejects a candidate that fails the gate: the gate is recorded as failed and no channel moves', async () => {
    const line = `wf-gatefail-${suffix}`;
    await harness.withStubs(line, stubs(line, {}, [NO_GAIN]), async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'rejected', version: 2, reason: 'failed on new', channels: { stable: 1, candidate: 2 } });
      expect(result.channels.canary).toBeUndefined();
      const [gate] = run.inputs('recordGate');
      expect(gate).toMatchObject({ line, candidate: 2, champion: 1, dropDigest: digestOf('b'), decision: { verdict: 'fail' } });
      expect(gate!.decision.suites.find((s) => s.suite === 'new')).toMatchObject({ pass: false, candidate: 2, champion: 2 });
      // recordGate marks the drop rejected itself; nothing reached canary, so there is nothing to settle.
      expect(run.names()).not.toContain('moveChannel');
      expect(run.names()).not.toContain('settleCanary');
      expect(run.names().at(-1)).toBe('recordGate');
    });
  });

  it('rolls back a canary when a regression report is confirmed by re-evaluation', async () => {
    const line = `wf-rollback-${suffix}`;
    // A long window: the rollback must end it early, not wait it out.
    await harness.withStubs(line, stubs(line, { canaryWindow: '1m' }, [PASSING, REGRESSED]), async (run) => {
      const report: RegressionReport = { reason: 'answers got worse', actor: 'ops' };
      const started = Date.now();
      // Delivered with the start, so it waits in the cycle's buffer until the canary window opens.
      const handle = await run.client.workflow.signalWithStart<typeof cycleWorkflow, [RegressionReport]>('cycleWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `cycle:${line}:2`,
        args: [cycleInput(line)],
        signal: regressionSignal,
        signalArgs: [report],
      });
      const result = await handle.result();
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(result).toMatchObject({ verdict: 'rolled-back', version: 2, channels: { stable: 1, canary: 1 } });
      expect(result.reason).toMatch(/^canary regression confirmed: failed on old/);
      // The recheck compares the canary with the champion on every suite, none of them counted as new.
      expect(run.inputs('evaluateVersions')[1]).toMatchObject({ versions: [2, 1], suites: [{ name: 'old' }, { name: 'new' }] });
      expect(run.inputs('recordEvent')).toEqual([
        expect.objectContaining({
          action: 'regression.reported',
          actor: 'ops',
          version: 2,
          payload: expect.objectContaining({ confirmed: true }),
          eventKey: expect.stringMatching(/^cycle:.*:regression:1$/),
        }),
      ]);
      expect(run.inputs('settleCanary')).toEqual([
        expect.objectContaining({ line, version: 2, actor: 'ops', reason: expect.stringMatching(/^automatic rollback: answers got worse/) }),
      ]);
      expect(run.inputs('setDropStatus')).toEqual([
        expect.objectContaining({ digest: digestOf('b'), status: 'rejected', reason: 'canary regression: answers got worse' }),
      ]);
      expect(run.inputs('moveChannel').map((m) => m.channel)).toEqual(['canary']);
    });
  });

  it('promotes after the canary window when a regression report is not confirmed', async () => {
    const line = `wf-unconfirmed-${suffix}`;
    await harness.withStubs(line, stubs(line, { canaryWindow: '300ms' }, [PASSING, PASSING]), async (run) => {
      const handle = await run.client.workflow.signalWithStart<typeof cycleWorkflow, [RegressionReport]>('cycleWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `cycle:${line}:2`,
        args: [cycleInput(line)],
        signal: regressionSignal,
        signalArgs: [{ reason: 'looks off', actor: 'ops' }],
      });
      const result = await handle.result();
      expect(result.verdict).toBe('promoted');
      expect(run.inputs('recordEvent')).toEqual([
        expect.objectContaining({ action: 'regression.reported', payload: expect.objectContaining({ confirmed: false }) }),
      ]);
      expect(run.names()).not.toContain('settleCanary');
      expect(run.inputs('moveChannel').map((m) => m.channel)).toEqual(['canary', 'stable']);
    });
  });

  it('expires an approval that nobody gives: canary settles back and the drop is rejected', async () => {
    const line = `wf-expiry-${suffix}`;
    await harness.withStubs(line, stubs(line, { requireApproval: true, approvalTimeout: '200ms' }), async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'approval-expired', version: 2, reason: 'no approval within 200ms', channels: { stable: 1, canary: 1 } });
      expect(run.inputs('settleCanary')).toEqual([expect.objectContaining({ version: 2, actor: 'perennial', reason: 'no approval within 200ms' })]);
      expect(run.inputs('setDropStatus')).toEqual([expect.objectContaining({ status: 'rejected', reason: 'no approval within 200ms' })]);
      expect(run.inputs('moveChannel').map((m) => m.channel)).toEqual(['canary']);
    });
  });

  it('promotes on approval with the approver as actor, after refusing an approval for another version', async () => {
    const line = `wf-approve-${suffix}`;
    await harness.withStubs(line, stubs(line, { requireApproval: true, approvalTimeout: '1m' }), async (run) => {
      const handle = await run.client.workflow.start<typeof cycleWorkflow>('cycleWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `cycle:${line}:2`,
        args: [cycleInput(line)],
      });
      await until(async () => ((await handle.query(cycleStateQuery)).awaitingApproval ? true : undefined));
      await expect(handle.executeUpdate(approveUpdate, { args: [{ version: 3, actor: 'rev' }] })).rejects.toMatchObject({
        cause: { message: expect.stringMatching(/waiting for approval of version 2, not 3/) },
      });
      expect(await handle.executeUpdate(approveUpdate, { args: [{ version: 2, actor: 'rev', reason: 'looks good' }] })).toEqual({ version: 2, approved: true });
      const result = await handle.result();
      expect(result.verdict).toBe('promoted');
      // Keyed by the cycle, so a re-run of the local activity on replay records no second approval.
      expect(run.inputs('recordEvent')).toEqual([
        expect.objectContaining({
          action: 'release.approved',
          actor: 'rev',
          payload: { reason: 'looks good' },
          eventKey: expect.stringMatching(/^cycle:.*:approved$/),
        }),
      ]);
      expect(run.inputs('moveChannel')[1]).toMatchObject({ channel: 'stable', actor: 'rev' });
    });
  });

  it('gives way to an operator who moved stable meanwhile: a CAS conflict is a `conflict` verdict', async () => {
    const line = `wf-conflict-${suffix}`;
    const base = stubs(line);
    const conflicting: StubActivities = {
      ...base,
      moveChannel: async (req) => {
        if (req.channel === 'stable') throw new ChannelConflictError(line, 'stable', 3, 4, 1);
        return base.moveChannel!(req);
      },
    };
    await harness.withStubs(line, conflicting, async (run) => {
      const result = await execute(run, line);
      expect(result.verdict).toBe('conflict');
      expect(result.reason).toMatch(/expected epoch 3, but it is at epoch 4/);
      expect(result.channels).toMatchObject({ stable: 1, canary: 1 });
      expect(run.inputs('moveChannel').map((m) => m.channel)).toEqual(['canary', 'stable']);
      expect(run.inputs('settleCanary')).toEqual([expect.objectContaining({ version: 2, reason: expect.stringMatching(/^not promoted: channel .* moved/) })]);
    });
  });

  it('turns a training failure no retry can fix into a rejected verdict and marks the drop failed', async () => {
    const line = `wf-diverged-${suffix}`;
    const diverging: StubActivities = {
      ...stubs(line),
      trainCandidate: async () => {
        throw ApplicationFailure.create({ message: 'loss diverged at step 4 (NaN)', type: 'TrainingDivergedError', nonRetryable: true });
      },
    };
    await harness.withStubs(line, diverging, async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'rejected', reason: 'loss diverged at step 4 (NaN)', dropFailed: true, channels: { stable: 1 } });
      expect(result.version).toBeUndefined();
      expect(run.inputs('trainCandidate')).toHaveLength(1); // non-retryable: no second attempt
      expect(run.inputs('closeFailedCycle')).toEqual([
        { line, key: `cycle:${line}:2:${digestOf('b').slice(0, 16)}`, digest: digestOf('b'), reason: 'loss diverged at step 4 (NaN)' },
      ]);
      expect(run.names()).toEqual(['lineSnapshot', 'ingestDrop', 'trainCandidate', 'closeFailedCycle']);
    });
  });

  it('quarantines a drop the ingest activity finds invalid, before any training', async () => {
    const line = `wf-quarantine-${suffix}`;
    const invalid: StubActivities = {
      ...stubs(line),
      ingestDrop: async () => {
        throw ApplicationFailure.nonRetryable('line 3: text is empty', 'InvalidDataError');
      },
    };
    await harness.withStubs(line, invalid, async (run) => {
      const result = await execute(run, line);
      expect(result).toMatchObject({ verdict: 'quarantined', reason: 'line 3: text is empty' });
      expect(run.names()).toEqual(['lineSnapshot', 'ingestDrop']);
    });
  });
});
