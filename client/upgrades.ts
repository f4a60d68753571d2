/** Starting and reading foundation upgrades (upgradeWorkflow), for the CLI, the tests and the report. */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { upgradeWorkflowId, WorkflowType } from '../schemas/contracts/ids.ts';
import { InvalidInputError } from '../schemas/contracts/errors.ts';
import { upgradeInputProblem, upgradeStateQuery, type UpgradeInput, type UpgradeResult, type UpgradeStart, type UpgradeState } from '../schemas/contracts/messages.ts';
import type { upgradeWorkflow } from '../workflows/upgrade-workflow.ts';
import type { LoopTarget } from './ops.ts';

/**
 * The workflow id of an upgrade: `upgrade:<foundation>@<v>` for the automatic one over every `auto` line, and
 * `upgrade:<foundation>@<v>:<line>` for an operator's upgrade of named lines (so both can exist).
 */
export const upgradeIdFor = (input: Pick<UpgradeInput, 'foundation' | 'version' | 'lines'>) =>
  input.lines?.length ? `${upgradeWorkflowId(input.foundation, input.version)}:${input.lines.join(',')}` : upgradeWorkflowId(input.foundation, input.version);

/**
 * Starts an upgrade (or finds the one already running under the same id) and returns its id. Fan-out settings out
 * of bounds (upgradeInputProblem) throw InvalidInputError before anything starts; the workflow refuses them too.
 */
export async function startUpgrade(t: LoopTarget, input: UpgradeInput): Promise<string> {
  const problem = upgradeInputProblem(input);
  if (problem) throw new InvalidInputError(problem);
  const workflowId = upgradeIdFor(input);
  try {
    await t.client.workflow.start<typeof upgradeWorkflow>(WorkflowType.upgrade, { taskQueue: t.taskQueue, workflowId, args: [input] });
  } catch (err) {
    // The same upgrade asked for twice: the running one answers.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return workflowId;
}

/**
 * What a move of a foundation's `stable` (a rollback, an override) did about its dependents, for a person: the
 * upgrade it started and the lines it refused, or why none started.
 */
export function describeUpgradeStart(u: UpgradeStart): string[] {
  const target = `${u.foundation}@${u.version}`;
  const head = u.workflowId
    ? `upgrade onto ${target} started: ${u.workflowId} (${u.lines.length ? u.lines.join(', ') : 'no transfer'})`
    : `no upgrade onto ${target} started: ${u.reason ?? 'no dependent line is due'}`;
  return [head, ...(u.workflowId ? u.refused.map((r) => `  ${r.line} refused: ${r.reason}`) : [])];
}

export async function upgradeResult(t: LoopTarget, workflowId: string): Promise<UpgradeResult> {
  return t.client.workflow.getHandle<typeof upgradeWorkflow>(workflowId).result();
}

/** Progress of a running upgrade, or its result once it has finished; null when there is no such upgrade. */
export async function upgradeProgress(t: LoopTarget, workflowId: string): Promise<UpgradeState | null> {
  const handle = t.client.workflow.getHandle<typeof upgradeWorkflow>(workflowId);
  try {
    const { status } = await handle.describe();
    if (status.name === 'RUNNING') return await handle.query(upgradeStateQuery);
    if (status.name !== 'COMPLETED') return null;
    const r = await handle.result();
    return { ...r, pending: [], running: [] };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** Upgrades of the installation (its task queue), newest first, from Temporal's visibility store. */
export async function listUpgrades(t: LoopTarget, limit = 20): Promise<{ workflowId: string; status: string; startTime: Date }[]> {
  const out: { workflowId: string; status: string; startTime: Date }[] = [];
  for await (const w of t.client.workflow.list({ query: `WorkflowType = '${WorkflowType.upgrade}' AND TaskQueue = '${t.taskQueue}'` })) {
    out.push({ workflowId: w.workflowId, status: w.status.name, startTime: w.startTime });
    if (out.length >= limit) break;
  }
  return out;
}
