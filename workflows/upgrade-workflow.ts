/**
 * A foundation upgrade (`upgrade:<foundation>@<v>`): one transfer cycle per dependent application line, as
 * children (the Temporal UI shows the parent with its children). Each child is a cycleWorkflow with a transfer:
 * it trains from the new foundation version with the line's stable version as teacher, passes the line's gate
 * and the inheritance gate, and releases through the line's channels by compare-and-swap. A line whose transfer
 * fails stays on its old version with the reason recorded; the others go on. Each transfer ends with a seal of the
 * audit log, as a line's cycles do.
 */
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  ParentClosePolicy,
  continueAsNew,
  executeChild,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RegistryActivities } from '../activities/types.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { transferCycleId } from '../schemas/contracts/ids.ts';
import {
  phaseSignal,
  progressSignal,
  upgradeStateQuery,
  type CyclePhase,
  type UpgradeInput,
  type UpgradeLineOutcome,
  type UpgradeResult,
  upgradeInputProblem,
} from '../schemas/contracts/messages.ts';
import { cycleWorkflow } from './cycle-workflow.ts';
import { registry } from './options.ts';

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_LINES_PER_RUN = 50;

export async function upgradeWorkflow(input: UpgradeInput): Promise<UpgradeResult> {
  const upgradeId = workflowInfo().workflowId;
  const { foundation, version } = input;
  // Fan-out settings come from any client: out of bounds, they fail the upgrade before anything starts (a plain
  // Error would retry the task for ever). Patched: a history recorded before the bounds ran clamped values on.
  const problem = upgradeInputProblem(input);
  if (problem && patched('upgrade-bounds-v1')) throw ApplicationFailure.nonRetryable(`${upgradeId}: ${problem}`, ErrorType.InvalidInput);
  const acts = proxyActivities<RegistryActivities>(registry);
  const done: UpgradeLineOutcome[] = [...(input.done ?? [])];
  const running = new Map<string, CyclePhase>();
  let sealFailed: string | undefined;
  // The plan (which lines, and that the foundation version exists, is stable and is a foundation's) is made once;
  // a continued run carries what is left. A line the plan refuses (its model cannot teach the new shape) is an
  // outcome at once, with the reason a named upgrade of it gets, and no transfer starts for it.
  let queue: string[];
  if (input.pending) queue = [...input.pending];
  else {
    const plan = await acts.upgradePlan({ foundation, version, lines: input.lines });
    queue = plan.lines;
    for (const r of plan.refused ?? []) done.push({ line: r.line, verdict: 'refused', reason: r.reason });
  }
  setHandler(upgradeStateQuery, () => ({
    upgradeId,
    foundation,
    version,
    pending: [...queue],
    running: [...running.keys()],
    done: [...done],
    ...(sealFailed ? { sealFailed } : {}),
  }));
  // The children report phases and progress to their parent as cycles do to a line workflow; the upgrade reads
  // their outcome instead, so the reports are taken and dropped (not left unhandled).
  setHandler(phaseSignal, () => undefined);
  setHandler(progressSignal, () => undefined);

  // Clamped for histories recorded before the bounds; a new run has passed upgradeInputProblem above.
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
    // Anchor what the transfer wrote, as a line workflow does after each of its cycles. Patched: histories recorded
    // before transfers were sealed replay without it.
    if (patched('upgrade-seal-v1')) {
      try {
        await acts.sealAuditLog();
        sealFailed = undefined;
      } catch (err) {
        sealFailed = `sealing after ${cycleId}: ${(err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message}`;
        log.error('could not seal the audit log; run `perennial audit verify`', { cycleId, error: sealFailed });
      }
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
  return { upgradeId, foundation, version, done, ...(sealFailed ? { sealFailed } : {}) };
}
