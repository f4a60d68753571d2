/**
 * Periodic re-evaluation (`reevaluate:<line>:...`): measures the line's `stable` version on every suite the
 * line has now, so suites added since its release get a result and drift in the evaluation code shows.
 */
import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { TrainingQueueActivities, WorkflowQueueActivities } from '../activities/types.ts';
import type { Metrics } from './gate.ts';
import { trainingQueueFor } from '../schemas/contracts/ids.ts';
import { evaluation, registry } from './options.ts';
import { LINE, PHASE, VERSION } from '../schemas/contracts/search-attributes.ts';

export interface ReevaluateResult {
  line: string;
  version: number | null;
  metrics: Record<string, Metrics>;
}

/** Evaluates `stable` on all suites and records the results; idempotent (evaluations are upserts). */
export async function reevaluateWorkflow(input: { line: string }): Promise<ReevaluateResult> {
  const light = proxyActivities<WorkflowQueueActivities>(registry);
  const evals = proxyActivities<TrainingQueueActivities>(evaluation(trainingQueueFor(workflowInfo().taskQueue)));
  upsertSearchAttributes([
    { key: LINE, value: input.line },
    { key: PHASE, value: 'reevaluate' },
  ]);
  const snapshot = await light.lineSnapshot({ line: input.line });
  const stable = snapshot.channels.stable?.version ?? null;
  if (stable === null) return { line: input.line, version: null, metrics: {} };
  upsertSearchAttributes([{ key: VERSION, value: stable }]);
  const measured = await evals.evaluateVersions({ line: input.line, versions: [stable], suites: snapshot.suites, fresh: true });
  const metrics = measured[stable]!;
  return { line: input.line, version: stable, metrics };
}
