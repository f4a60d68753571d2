/**
 * `lineWorkflow` with stub activities: a failed audit seal after a cycle is in the line's `state` query (what
 * `perennial status` shows), carried through continue-as-new, and cleared by the next seal that succeeds.
 */
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { lineWorkflow } from '../../workflows/line-workflow.ts';
import { dataDropSignal, stateQuery } from '../../schemas/contracts/messages.ts';
import type { DropRequest } from '../../schemas/io.ts';
import { dropRequest, promotingStubs, startStubHarness, until, type StubHarness } from '../helpers/stub-worker.ts';

let harness: StubHarness;
beforeAll(async () => void (harness = await startStubHarness()));
afterAll(async () => harness?.close());

describe('lineWorkflow and the audit seal', () => {
  it('reports a failed seal in its state query until a later seal succeeds', async () => {
    const line = `wf-seal-${Date.now().toString(36)}`;
    const stubs = promotingStubs(line);
    let seals = 0;
    // Non-retryable here only to keep the test short: the real activity's failure is retried, then lands the same way.
    stubs.sealAuditLog = async () => {
      if (++seals === 1) throw ApplicationFailure.nonRetryable('could not write the signed root to roots.jsonl: 100 of 812 bytes written (EFBIG)', 'SealError');
      return { treeSize: 9, rootHash: 'a'.repeat(64) };
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
        const failed = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 1 && s.current === null && s.sealFailure ? s : undefined;
        });
        expect(failed.sealFailure).toMatchObject({ cycleId: `cycle:${line}:2`, reason: expect.stringMatching(/could not write the signed root .*EFBIG/) });

        await handle.signal(dataDropSignal, dropRequest('b'));
        const sealed = await until(async () => {
          const s = await handle.query(stateQuery);
          return s.recent.length === 2 && !s.sealFailure ? s : undefined;
        });
        expect(sealed.recent.map((r) => r.verdict)).toEqual(['promoted', 'promoted']);
        expect(seals).toBe(2);
      } finally {
        await handle.terminate('test done');
      }
    });
  });
});
