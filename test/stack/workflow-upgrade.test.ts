/**
 * `upgradeWorkflow` with stub activities: the fan-out of a foundation upgrade into one transfer cycle per line,
 * on the real Temporal dev server. One line's transfer fails its inheritance gate and stays on its old version,
 * another's training fails; the rest go on, across continue-as-new.
 */
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/types.ts';
import type { upgradeWorkflow } from '../../workflows/upgrade-workflow.ts';
import { transferCycleId, upgradeWorkflowId } from '../../schemas/contracts/ids.ts';
import { MAX_UPGRADE_CONCURRENCY, MAX_UPGRADE_LINES_PER_RUN } from '../../schemas/contracts/messages.ts';
import { startUpgrade } from '../../client/upgrades.ts';
import { ErrorType } from '../../schemas/contracts/errors.ts';
import { TRAINED, moved, snapshotWithChampion, suite, startStubHarness, type StubActivities, type StubHarness, type StubRun } from '../helpers/stub-worker.ts';

let harness: StubHarness;
beforeAll(async () => void (harness = await startStubHarness()));
afterAll(async () => harness?.close());

const suffix = Date.now().toString(36);
type Measured = Awaited<ReturnType<Activities['evaluateVersions']>>;

/** The upgraded version 2 holds the line's suite against its teacher, version 1, and keeps 0.625 of base@2's general gain. */
const KEPT: Measured = { 2: { old: { loss: 2.0 }, general: { loss: 1.75 } }, 1: { old: { loss: 2.0 }, general: { loss: 2.0 } } };
/** The upgraded version 2 lost a third of what version 1 knew: the gates fail. */
const LOST: Measured = { 2: { old: { loss: 3.0 }, general: { loss: 1.75 } }, 1: { old: { loss: 2.0 }, general: { loss: 2.0 } } };
/** Kept what version 1 knew, but only a quarter of base@2's general gain (2.2 -> 1.8 for the foundation, 2.0 -> 1.9 here). */
const NO_GAIN: Measured = { 2: { old: { loss: 2.0 }, general: { loss: 1.9 } }, 1: { old: { loss: 2.0 }, general: { loss: 2.0 } } };
/** The foundation's own versions on its general suite: base@2 gained 0.4 over base@1. */
const FOUNDATION: Measured = { 2: { general: { loss: 1.8 } }, 1: { general: { loss: 2.2 } } };

function transferStubs(line: string, foundation: string, measured: Measured, train: Activities['trainCandidate'] = async () => TRAINED): StubActivities {
  const snapshot = snapshotWithChampion(line);
  return {
    lineSnapshot: async () => ({ ...snapshot, suites: [suite(foundation, 'general', 'g'), ...snapshot.suites], spec: { ...snapshot.spec, kind: 'application', foundation } }),
    transferContext: async () => ({ oldFoundation: { line: foundation, version: 1 }, rebase: false, suites: [], replay: [] }),
    trainCandidate: train,
    registerCandidate: async () => ({ version: 2, candidateMove: moved(line, 'candidate', null, 2) }),
    evaluateVersions: async (req) => (req.line === foundation ? FOUNDATION : measured),
    adoptFoundation: async () => undefined,
    recordGate: async () => ({ id: 9 }),
    moveChannel: async (req) => moved(line, req.channel, req.channel === 'stable' ? 1 : null, req.to, 4),
    recordEvent: async () => undefined,
  };
}

/** Runs `body` with every line's stubs installed (nested withStubs, one per line). */
async function withLines<T>(lines: [string, StubActivities][], body: (runs: Map<string, StubRun>) => Promise<T>, runs = new Map<string, StubRun>()): Promise<T> {
  const [first, ...rest] = lines;
  if (!first) return body(runs);
  return harness.withStubs(first[0], first[1], (run) => withLines(rest, body, new Map([...runs, [first[0], run]])));
}

describe('upgradeWorkflow with stub activities', () => {
  it('starts one transfer per line; a failing line stays on its old version while the others are promoted', async () => {
    const foundation = `upbase-${suffix}`;
    const [good, lost, broken, good2, nogain] = ['upgood', 'uplost', 'upbroken', 'upgood2', 'upnogain'].map((n) => `${n}-${suffix}`) as [string, string, string, string, string];
    const plan = { upgradePlan: async () => ({ lines: [good, lost, broken, good2, nogain] }), sealAuditLog: async () => ({ treeSize: 1, rootHash: '0'.repeat(64) }) };
    const failing: Activities['trainCandidate'] = async () => {
      throw ApplicationFailure.nonRetryable('teacher weights are missing', ErrorType.ArtifactIntegrity);
    };
    await withLines(
      [
        [`${foundation}@2`, plan],
        [good, transferStubs(good, foundation, KEPT)],
        [lost, transferStubs(lost, foundation, LOST)],
        [broken, transferStubs(broken, foundation, KEPT, failing)],
        [good2, transferStubs(good2, foundation, KEPT)],
        [nogain, transferStubs(nogain, foundation, NO_GAIN)],
      ],
      async (runs) => {
        const parent = runs.get(`${foundation}@2`)!;
        const result = await parent.client.workflow.execute<typeof upgradeWorkflow>('upgradeWorkflow', {
          taskQueue: parent.taskQueue,
          workflowId: upgradeWorkflowId(foundation, 2),
          // Two lines per run: the four lines need a continue-as-new, which must carry the finished ones.
          args: [{ foundation, version: 2, concurrency: 2, linesPerRun: 2 }],
        });
        const byLine = Object.fromEntries(result.done.map((o) => [o.line, o]));
        expect(Object.keys(byLine).sort()).toEqual([good, lost, broken, good2, nogain].sort());
        expect(byLine[good]).toMatchObject({ verdict: 'promoted', version: 2, cycleId: `cycle:${good}:upgrade-${foundation}@2` });
        expect(byLine[good2]).toMatchObject({ verdict: 'promoted', version: 2 });
        expect(byLine[lost]).toMatchObject({ verdict: 'rejected' });
        expect(byLine[lost]!.reason).toMatch(/inheritance failed on inherit:old/);
        expect(byLine[broken]).toMatchObject({ verdict: 'rejected', reason: 'transfer failed: teacher weights are missing' });
        // The plan is made once, not again after continue-as-new; each transfer, failed or not, ends with a seal of
        // the audit log, as a line's cycles do (before: no seal, so what the transfers wrote stayed unsigned).
        expect(parent.names()).toEqual(['upgradePlan', ...Array(5).fill('sealAuditLog')]);

        // A transfer: no ingest, the new foundation as base, the old stable version as teacher, trained on the replay buffer.
        const g = runs.get(good)!;
        expect(g.names()).not.toContain('ingestDrop');
        expect(g.inputs('trainCandidate')[0]).toMatchObject({ init: { line: foundation, version: 2 }, teacher: { line: good, version: 1 }, dropDigest: null });
        expect(g.inputs('registerCandidate')[0]).toMatchObject({ parentVersion: 1, init: { line: foundation, version: 2 }, drops: [] });
        const gate = g.inputs('recordGate')[0]!;
        expect(gate.dropDigest).toBeUndefined();
        expect(gate.decision.suites.map((s) => s.suite)).toEqual(['general', 'old', 'inherit:general', 'inherit:old', 'inherit-gain:general']);
        expect(gate.decision.suites.find((s) => s.suite === 'inherit-gain:general')!.reason).toMatch(/^kept 0\.6250 of the new foundation's gain/);
        // The old and the new foundation version were measured on the foundation's suite, in one call.
        expect(g.inputs('evaluateVersions').find((e) => e.line === foundation)).toMatchObject({ versions: [2, 1], suites: [{ name: 'general' }] });
        expect(g.inputs('moveChannel').map((m) => m.channel)).toEqual(['canary', 'stable']);
        // Promoted: the line now stands on the new foundation version (its line and shape).
        expect(g.inputs('adoptFoundation')).toMatchObject([{ line: good, version: 2, foundation: { line: foundation, version: 2 } }]);

        // Kept what it knew but not half of the foundation's gain: rejected, the number named, the line left where it was.
        expect(byLine[nogain]).toMatchObject({ verdict: 'rejected' });
        expect(byLine[nogain]!.reason).toMatch(/inheritance failed on inherit-gain:general/);
        expect(runs.get(nogain)!.names()).not.toContain('adoptFoundation');

        // The line that lost what it knew: gate recorded as failed with each number, and no channel moved.
        const l = runs.get(lost)!;
        const lostGate = l.inputs('recordGate')[0]!;
        expect(lostGate.decision.suites.find((s) => s.suite === 'inherit:old')).toMatchObject({ pass: false, candidate: 3, champion: 2 });
        expect(l.names()).not.toContain('moveChannel');
        expect(runs.get(broken)!.names()).not.toContain('registerCandidate');
      },
    );
  });

  it('refuses fan-out settings out of bounds before the plan, naming the limit; the client refuses them before starting', async () => {
    // Before: any concurrency the client sent was taken (a huge one builds that many runners in the workflow, a
    // fraction or NaN none at all, and the upgrade continued as new for ever).
    const foundation = `upbound-${suffix}`;
    const plan = { upgradePlan: async () => ({ lines: [] }) };
    await harness.withStubs(`${foundation}@3`, plan, async (run) => {
      for (const [i, bad] of [{ concurrency: 10_000 }, { concurrency: 0 }, { concurrency: 2.5 }, { linesPerRun: 100_000 }].entries()) {
        const err = await run.client.workflow
          .execute<typeof upgradeWorkflow>('upgradeWorkflow', {
            taskQueue: run.taskQueue,
            workflowId: `${upgradeWorkflowId(foundation, 3)}:bad${i}`,
            args: [{ foundation, version: 3, ...bad }],
          })
          .catch((e: unknown) => e);
        expect(err, JSON.stringify(bad)).toBeInstanceOf(WorkflowFailedError);
        const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
        expect(cause.type).toBe(ErrorType.InvalidInput);
        expect(cause.nonRetryable).toBe(true);
        const [name, max] = 'concurrency' in bad ? ['concurrency', MAX_UPGRADE_CONCURRENCY] : ['linesPerRun', MAX_UPGRADE_LINES_PER_RUN];
        expect(cause.message).toContain(`${name} takes a whole number from 1 to ${max}`);
      }
      expect(run.names()).toEqual([]);
      // The client library says the same before it starts anything.
      const t = { client: run.client, taskQueue: run.taskQueue };
      await expect(startUpgrade(t, { foundation, version: 3, concurrency: 10_000 })).rejects.toThrow(
        `concurrency takes a whole number from 1 to ${MAX_UPGRADE_CONCURRENCY}`,
      );
      await expect(run.client.workflow.getHandle(upgradeWorkflowId(foundation, 3)).describe()).rejects.toThrow(WorkflowNotFoundError);
      // At the bound it runs.
      const ok = await run.client.workflow.execute<typeof upgradeWorkflow>('upgradeWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: upgradeWorkflowId(foundation, 3),
        args: [{ foundation, version: 3, concurrency: MAX_UPGRADE_CONCURRENCY, linesPerRun: MAX_UPGRADE_LINES_PER_RUN }],
      });
      expect(ok.done).toEqual([]);
    });
  });

  it('records a line the plan refuses as its outcome, with the reason, and starts no transfer for it', async () => {
    const foundation = `uprefuse-${suffix}`;
    const [good, narrow] = [`uprgood-${suffix}`, `uprnarrow-${suffix}`];
    const reason = `${narrow} (context 16, vocabulary 259) cannot teach a model of ${foundation}'s shape (context 32, vocabulary 259): distillation needs the same vocabulary and a teacher context at least the new model's`;
    const plan = {
      upgradePlan: async () => ({ lines: [good], refused: [{ line: narrow, reason }], skipped: [] }),
      sealAuditLog: async () => ({ treeSize: 1, rootHash: '0'.repeat(64) }),
    };
    await withLines(
      [
        [`${foundation}@2`, plan],
        [good, transferStubs(good, foundation, KEPT)],
        [narrow, transferStubs(narrow, foundation, KEPT)],
      ],
      async (runs) => {
        const parent = runs.get(`${foundation}@2`)!;
        const result = await parent.client.workflow.execute<typeof upgradeWorkflow>('upgradeWorkflow', {
          taskQueue: parent.taskQueue,
          workflowId: upgradeWorkflowId(foundation, 2),
          args: [{ foundation, version: 2 }],
        });
        expect(result.done).toEqual([{ line: narrow, verdict: 'refused', reason }, expect.objectContaining({ line: good, verdict: 'promoted' })]);
        expect(runs.get(narrow)!.names()).toEqual([]);
        await expect(parent.client.workflow.getHandle(transferCycleId(narrow, foundation, 2)).describe()).rejects.toThrow(WorkflowNotFoundError);
      },
    );
  });

  it('fails before any line starts when the plan refuses the foundation version', async () => {
    const foundation = `upmissing-${suffix}`;
    const plan = {
      upgradePlan: async () => {
        throw ApplicationFailure.nonRetryable(`${foundation}@7 is not stable`, ErrorType.InvalidInput);
      },
    };
    await harness.withStubs(`${foundation}@7`, plan, async (run) => {
      const err = await run.client.workflow
        .execute<typeof upgradeWorkflow>('upgradeWorkflow', { taskQueue: run.taskQueue, workflowId: upgradeWorkflowId(foundation, 7), args: [{ foundation, version: 7 }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause?.cause as Error | undefined;
      expect(cause?.message).toMatch(/is not stable/);
      expect(run.names()).toEqual(['upgradePlan']);
    });
  });
});
