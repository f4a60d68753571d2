/**
 * Names the workflows, the workers, the client and the activities agree on: workflow ids and types, task
 * queues and schedule ids. Bundle-safe (no I/O), so workflow code and activities import the same table.
 */

/** The registered workflow type names (the exported function names of workflows/index.ts). */
export const WorkflowType = {
  line: 'lineWorkflow',
  cycle: 'cycleWorkflow',
  reevaluate: 'reevaluateWorkflow',
  scheduleTick: 'scheduleTickWorkflow',
  upgrade: 'upgradeWorkflow',
} as const;

/** One long-lived workflow per model line. */
export const lineWorkflowId = (line: string) => `line:${line}`;
/** The n-th release cycle of a line, a child of its line workflow. */
export const cycleWorkflowId = (line: string, n: number) => `cycle:${line}:${n}`;

/** The upgrade of every dependent line onto one foundation version. */
export const upgradeWorkflowId = (foundation: string, version: number) => `upgrade:${foundation}@${version}`;
/** The transfer cycle of one line in an upgrade, a child of the upgrade workflow. */
export const transferCycleId = (line: string, foundation: string, version: number) => `${transferCyclePrefix(line)}${foundation}@${version}`;
/** What every transfer cycle id of a line starts with. */
export const transferCyclePrefix = (line: string) => `cycle:${line}:upgrade-`;

export type ScheduleKind = 'cycle' | 'reevaluate';
/** `schedule:<line>:cycle` runs pending drops; `schedule:<line>:reevaluate` re-measures stable. */
export const scheduleId = (line: string, kind: ScheduleKind) => `schedule:${line}:${kind}`;
/** The workflow a schedule starts on each tick (Temporal appends the tick's time). */
export const scheduleTickWorkflowId = (line: string, kind: ScheduleKind) => `tick:${line}:${kind}`;

/** Training and evaluation run on their own queue, so hosts with accelerators can serve it alone. */
export const trainingQueueFor = (workflowQueue: string) => `${workflowQueue}.training`;
