/**
 * Temporal Schedules for lines: `schedule:<line>:cycle` runs the line's pending drops on each tick (the line
 * then waits for ticks instead of starting cycles at once), `schedule:<line>:reevaluate` re-measures
 * `stable` on every suite. Schedules are Temporal's own objects: the UI lists and edits them too.
 */
import { ScheduleNotFoundError, WorkflowNotFoundError, type Client, type ScheduleSpec } from '@temporalio/client';
import { lineWorkflowId, scheduleId, scheduleTickWorkflowId, type ScheduleKind } from '../schemas/contracts/ids.ts';
import { triggerSignal } from '../schemas/contracts/messages.ts';
import { scheduleTickWorkflow } from '../workflows/schedule-tick-workflow.ts';

export { scheduleId, type ScheduleKind };

export interface ScheduleInfo {
  scheduleId: string;
  line: string;
  kind: ScheduleKind;
  paused: boolean;
  spec: string;
  nextRuns: string[];
  recentRuns: number;
}

/** Tells a running line workflow whether drops now wait for ticks; a line not started yet learns it at start. */
async function notifyLine(client: Client, line: string, scheduled: boolean): Promise<void> {
  try {
    await client.workflow.getHandle(lineWorkflowId(line)).signal(triggerSignal, { scheduled });
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

export async function createSchedules(
  client: Client,
  taskQueue: string,
  line: string,
  when: { every?: string; cron?: string },
  kinds: ScheduleKind[] = ['cycle', 'reevaluate'],
): Promise<string[]> {
  const spec: ScheduleSpec = when.cron ? { cronExpressions: [when.cron] } : { intervals: [{ every: when.every as `${number}s` }] };
  const ids: string[] = [];
  for (const kind of kinds) {
    const id = scheduleId(line, kind);
    const action = {
      type: 'startWorkflow' as const,
      workflowType: scheduleTickWorkflow,
      args: [{ line, tick: { kind, scheduleId: id } }] as [Parameters<typeof scheduleTickWorkflow>[0]],
      taskQueue,
      workflowId: scheduleTickWorkflowId(line, kind),
    };
    try {
      await client.schedule.create({ scheduleId: id, spec, action, memo: { line, kind } });
    } catch (err) {
      if ((err as Error).name !== 'ScheduleAlreadyRunning') throw err;
      await client.schedule.getHandle(id).update((prev) => ({ ...prev, spec, action }));
    }
    ids.push(id);
  }
  if (kinds.includes('cycle')) await notifyLine(client, line, true);
  return ids;
}

export async function listSchedules(client: Client): Promise<ScheduleInfo[]> {
  const out: ScheduleInfo[] = [];
  for await (const s of client.schedule.list()) {
    const m = /^schedule:([a-z][a-z0-9-]*):(cycle|reevaluate)$/.exec(s.scheduleId);
    if (!m) continue;
    const d = await client.schedule.getHandle(s.scheduleId).describe();
    out.push({
      scheduleId: s.scheduleId,
      line: m[1]!,
      kind: m[2] as ScheduleKind,
      paused: d.state.paused,
      spec: d.spec.intervals?.length ? `every ${Number(d.spec.intervals[0]!.every) / 1000}s` : d.spec.calendars?.length ? 'calendar/cron' : '?',
      nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
      recentRuns: d.info.recentActions.length,
    });
  }
  return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

/** Pauses, resumes or deletes a line's schedules (or one, with `kind`). Returns the ids acted on. */
export async function changeSchedules(client: Client, line: string, action: 'pause' | 'resume' | 'delete', kind?: ScheduleKind): Promise<string[]> {
  const acted: string[] = [];
  for (const k of kind ? [kind] : (['cycle', 'reevaluate'] as const)) {
    const handle = client.schedule.getHandle(scheduleId(line, k));
    try {
      if (action === 'pause') await handle.pause(`paused from the perennial CLI`);
      else if (action === 'resume') await handle.unpause(`resumed from the perennial CLI`);
      else await handle.delete();
      acted.push(handle.scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  if (acted.includes(scheduleId(line, 'cycle'))) await notifyLine(client, line, action === 'resume');
  return acted;
}
