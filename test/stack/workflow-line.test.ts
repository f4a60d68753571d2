/**
 * `lineWorkflow` with stub activities: it queues and deduplicates drops while a cycle runs, and carries the
 * queue, the dedup set and the counters through continue-as-new into the next run; it forwards a regression
 * report to the cycle in its canary window; a cycle that fails outright is closed as a rejected, failed drop; and an
 * override that moves a foundation's stable starts the upgrade of its dependents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { lineWorkflow } from '../../workflows/line-workflow.ts';
import { dataDropSignal, overrideUpdate, reportRegressionUpdate, stateQuery } from '../../schemas/contracts/messages.ts';
import type { DropRequest } from '../../schemas/io.ts';
import { ApplicationFailure } from '@temporalio/common';
import {
  TRAINED,
  digestOf,
  passingEvaluation,
  dropRequest,
  moved,
  promotingStubs,
  startStubHarness,
  until,
  type StubActivities,
  type StubHarness,
} from '../helpers/stub-worker.ts';

let harness: StubHarness;
beforeAll(async () => void (harness = await startStubHarness()));
afterAll(async () => harness?.close());

const suffix = Date.now().toString(36);

describe('lineWorkflow with stub activities', () => {
  it('keeps its queue and dedup state across continue-as-new after a cycle', async () => {
    const line = `wf-line-${suffix}`;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const stubs = promotingStubs(line);
    let trained = 0;
    // The first training waits for the test, so drops sent meanwhile must queue behind the running cycle.
    stubs.trainCandidate = async () => (++trained === 1 && (await held), TRAINED);
    await harness.withStubs(line, stubs, async (run) => {
      const [a, b] = [dropRequest('a'), dropRequest('b')];
      const handle = await run.client.workflow.signalWithStart<typeof lineWorkflow, [DropRequest]>('lineWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `line:${line}`,
        args: [{ line }],
        signal: dataDropSignal,
        signalArgs: [a],
      });
      try {
        await until(async () => (run.names().includes('trainCandidate') ? true : undefined));
        await handle.signal(dataDropSignal, b);
        await handle.signal(dataDropSignal, a); // running now
        await handle.signal(dataDropSignal, b); // queued now
        const during = await handle.query(stateQuery);
        expect(during.current).toMatchObject({ cycleId: `cycle:${line}:2`, digest: a.digest });
        expect(during.queue.map((d) => d.digest)).toEqual([b.digest]);
        expect(during.duplicatesIgnored).toBe(2);
        release();

        // Two cycles, each followed by continue-as-new: the second run took drop b from the carried queue.
        const after = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 2 && s.current === null ? s : undefined;
        });
        expect(after.recent.map((r) => [r.cycleId, r.digest, r.verdict, r.version])).toEqual([
          [`cycle:${line}:2`, a.digest, 'promoted', 2],
          [`cycle:${line}:3`, b.digest, 'promoted', 3],
        ]);
        expect(after).toMatchObject({
          cyclesStarted: 3,
          queue: [],
          seen: [a.digest, b.digest],
          duplicatesIgnored: 2,
          channels: { stable: 3, canary: 3, candidate: 3 },
        });
        const first = await run.client.workflow.getHandle(`line:${line}`, handle.signaledRunId).describe();
        expect(first.status.name).toBe('CONTINUED_AS_NEW');
        const now = await handle.describe();
        expect(now.runId).not.toBe(handle.signaledRunId);
        expect(now.status.name).toBe('RUNNING');

        // Only a fresh start reads the registry; the continued runs live on the carried state.
        expect(run.inputs('lineSnapshot')).toHaveLength(1 + 2); // the line once, each cycle once
        expect(run.inputs('sealAuditLog')).toHaveLength(2);
        expect(run.inputs('ingestDrop').map((i) => [i.request.digest, i.key])).toEqual([
          [a.digest, `cycle:${line}:2:${digestOf('a').slice(0, 16)}`],
          [b.digest, `cycle:${line}:3:${digestOf('b').slice(0, 16)}`],
        ]);

        // The dedup set survived both continues: a drop seen two runs ago is still refused.
        await handle.signal(dataDropSignal, a);
        const last = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.duplicatesIgnored === 3 ? s : undefined;
        });
        expect(last.queue).toEqual([]);
        expect(run.inputs('ingestDrop')).toHaveLength(2);
      } finally {
        release();
        await handle.terminate('test done').catch(() => undefined);
      }
    });
  });

  it('forwards a regression report to the cycle in its canary window, and refuses one outside it', async () => {
    const line = `wf-report-${suffix}`;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let evaluated = 0;
    const stubs: StubActivities = {
      ...promotingStubs(line, () => ({ canaryWindow: '1m' })),
      trainCandidate: async () => (await held, TRAINED),
      // The gate passes; the recheck on the report finds `old` regressed.
      evaluateVersions: async (input) =>
        ++evaluated === 1
          ? passingEvaluation(input)
          : { [input.versions[0]!]: { old: { loss: 3 }, new: { loss: 1 } }, [input.versions[1]!]: { old: { loss: 2 }, new: { loss: 2 } } },
    };
    await harness.withStubs(line, stubs, async (run) => {
      const handle = await run.client.workflow.signalWithStart<typeof lineWorkflow, [DropRequest]>('lineWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `line:${line}`,
        args: [{ line }],
        signal: dataDropSignal,
        signalArgs: [dropRequest('a')],
      });
      try {
        const report = { reason: 'answers got worse', actor: 'ops' };
        await until(async () => (run.names().includes('trainCandidate') ? true : undefined));
        await expect(handle.executeUpdate(reportRegressionUpdate, { args: [report] })).rejects.toMatchObject({
          cause: { message: expect.stringMatching(/has no version in its canary window now \(phase: (ingest|adapt)\)/) },
        });
        release();
        await until(async () => ((await handle.query(stateQuery)).current?.phase === 'canary' ? true : undefined));
        expect(await handle.executeUpdate(reportRegressionUpdate, { args: [report] })).toEqual({ cycleId: `cycle:${line}:2`, version: 2 });
        const after = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 1 ? s : undefined;
        });
        expect(after.recent[0]).toMatchObject({ cycleId: `cycle:${line}:2`, verdict: 'rolled-back', version: 2 });
        expect(after.channels).toMatchObject({ stable: 1, canary: 1 });
        expect(run.inputs('settleCanary')).toEqual([expect.objectContaining({ version: 2, actor: 'ops' })]);
      } finally {
        release();
        await handle.terminate('test done').catch(() => undefined);
      }
    });
  });

  it('closes a cycle that fails outright as a rejected, failed drop, which may then be sent again', async () => {
    const line = `wf-failed-${suffix}`;
    const base = promotingStubs(line);
    let registered = 0;
    const stubs: StubActivities = {
      ...base,
      registerCandidate: async (input) => {
        if (++registered === 1) throw ApplicationFailure.nonRetryable('version row already taken', 'RegistryConflictError');
        return base.registerCandidate!(input);
      },
      closeFailedCycle: async () => ({ dropFailed: true }),
    };
    await harness.withStubs(line, stubs, async (run) => {
      const a = dropRequest('a');
      const handle = await run.client.workflow.signalWithStart<typeof lineWorkflow, [DropRequest]>('lineWorkflow', {
        taskQueue: run.taskQueue,
        workflowId: `line:${line}`,
        args: [{ line }],
        signal: dataDropSignal,
        signalArgs: [a],
      });
      try {
        const first = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 1 && s.current === null ? s : undefined;
        });
        expect(first.recent[0]).toMatchObject({ cycleId: `cycle:${line}:2`, verdict: 'rejected', reason: 'the cycle failed: version row already taken' });
        expect(first.seen).toEqual([]); // forgotten: the same content may come again
        expect(run.inputs('closeFailedCycle')).toEqual([
          { line, key: `cycle:${line}:2:${digestOf('a').slice(0, 16)}`, digest: a.digest, reason: 'the cycle failed: version row already taken' },
        ]);

        await handle.signal(dataDropSignal, a);
        const second = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 2 && s.current === null ? s : undefined;
        });
        expect(second.recent[1]).toMatchObject({ cycleId: `cycle:${line}:3`, digest: a.digest, verdict: 'promoted' });
        expect(second.duplicatesIgnored).toBe(0);
      } finally {
        await handle.terminate('test done').catch(() => undefined);
      }
    });
  });

  it('an override that moves a foundation stable starts the upgrade of its auto lines and says so', async () => {
    // Before: only a promoted cycle started an upgrade; `approve --override` moved stable and started nothing.
    const line = `wf-found-${suffix}`;
    const app = `wf-app-${suffix}`;
    const stubs: StubActivities = {
      ...promotingStubs(line),
      overrideGate: async (req) => moved(line, 'stable', 1, req.version, 5),
      upgradePlan: async () => ({ lines: [app], refused: [], skipped: [] }),
    };
    await harness.withStubs(line, stubs, async (run) => {
      const handle = await run.client.workflow.start<typeof lineWorkflow>('lineWorkflow', { taskQueue: run.taskQueue, workflowId: `line:${line}`, args: [{ line }] });
      try {
        const move = await handle.executeUpdate(overrideUpdate, { args: [{ version: 2, actor: 'carol', reason: 'accepted risk' }] });
        const id = `upgrade:${line}@2`;
        expect(move).toMatchObject({ channel: 'stable', from: 1, to: 2, upgrade: { foundation: line, version: 2, workflowId: id, lines: [app] } });
        expect(run.inputs('upgradePlan')).toEqual([{ foundation: line, version: 2 }]);
        expect((await run.client.workflow.getHandle(id).describe()).type).toBe('upgradeWorkflow');
        expect((await handle.query(stateQuery)).lastUpgrade).toMatchObject({ workflowId: id, lines: [app] });
      } finally {
        await handle.terminate('test done').catch(() => undefined);
        await run.client.workflow.getHandle(`upgrade:${line}@2`).terminate('test done').catch(() => undefined);
      }
    });
  });
});
