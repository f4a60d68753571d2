/**
 * A foundation upgrade (`upgrade:<foundation>@<v>`): one transfer cycle per dependent application line, as
 * children (the Temporal UI shows the parent with its children). Each child is a cycleWorkflow with a transfer:
 * it trains from the new foundation version with the line's stable version as teacher, passes the line's gate
 * and the inheritance gate, and releases through the line's channels by compare-and-swap. A line whose transfer
 * fails stays on its old version with the reason recorded; the others go on.
 */
import {
  ChildWorkflowFailure,
  ParentClosePolicy,
  continueAsNew,
  executeChild,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RegistryActivities } from '../activities/types.ts';
import { transferCycleId } from '../schemas/contracts/ids.ts';
import {
  phaseSignal,
  progressSignal,
  upgradeStateQuery,
  type CyclePhase,
  type UpgradeInput,
  type UpgradeLineOutcome,
  type UpgradeResult,
} from '../schemas/contracts/messages.ts';
import { cycleWorkflow } from './cycle-workflow.ts';
import { registry } from './options.ts';

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_LINES_PER_RUN = 50;

export async function upgradeWorkflow(input: UpgradeInput): Promise<UpgradeResult> {
  const upgradeId = workflowInfo().workflowId;
  const { foundation, version } = input;
  const acts = proxyActivities<RegistryActivities>(registry);
  const done: UpgradeLineOutcome[] = [...(input.done ?? [])];
  const running = new Map<string, CyclePhase>();
  // The plan (which lines, and that the foundation version exists, is stable and is a foundation's) is made once;
  // a continued run carries what is left.
  const queue = input.pending ? [...input.pending] : (await acts.upgradePlan({ foundation, version, lines: input.lines })).lines;
  setHandler(upgradeStateQuery, () => ({ upgradeId, foundation, version, pending: [...queue], running: [...running.keys()], done: [...done] }));
  // The children report phases and progress to their parent as cycles do to a line workflow; the upgrade reads
  // their outcome instead, so the reports are taken and dropped (not left unhandled).
  setHandler(phaseSignal, () => undefined);
  setHandler(progressSignal, () => undefined);

  const concurrency = Math.max(1, input.concurrency ?? DEFAULT_CONCURRENCY);
  const limit = Math.max(1, input.linesPerRun ?? DEFAULT_LINES_PER_RUN);
  let started = 0;
  const runOne = async (line: string) => {
    const cycleId = transferCycleId(line, foundation, version);
    running.set(line, 'queued');
    try {
      const result = await executeChild(cycleWorkflow, {
        workflowId: cycleId,
        args: [{ line, parentId: upgradeId, transfer: { foundation: { line: foundation, version }, maxNegativeFlipRate: input.maxNegativeFlipRate } }],
        // A transfer that outlives a terminated upgrade still finishes its release steps, as a line's cycles do.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      done.push({ line, cycleId, verdict: result.verdict, version: result.version, reason: result.reason });
    } catch (err) {
      // The line stays on its old version; the failure is its outcome, and the other lines go on.
      const reason = err instanceof ChildWorkflowFailure ? (err.cause?.message ?? err.message) : err instanceof Error ? err.message : String(err);
      done.push({ line, cycleId, verdict: 'failed', reason });
    } finally {
      running.delete(line);
    }
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (queue.length > 0 && started < limit) {
        started++;
        await runOne(queue.shift()!);
      }
    }),
  );
  if (queue.length > 0) await continueAsNew<typeof upgradeWorkflow>({ ...input, pending: queue, done });
  return { upgradeId, foundation, version, done };
}
