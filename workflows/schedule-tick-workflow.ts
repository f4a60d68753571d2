/**
 * What a Temporal Schedule starts (`tick:<line>:<kind>-...`): it hands the tick to the line workflow,
 * starting that one if needed, so schedules and data drops meet in one queue.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { WorkflowQueueActivities } from '../activities/types.ts';
import type { TickRequest } from '../schemas/contracts/messages.ts';
import { registry } from './options.ts';

/** Signals `tick` to the line workflow (signal-with-start through an activity). */
export async function scheduleTickWorkflow(input: { line: string; tick: TickRequest }): Promise<void> {
  const { signalLine } = proxyActivities<WorkflowQueueActivities>(registry);
  await signalLine({ line: input.line, tick: input.tick });
}
