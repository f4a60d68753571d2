/**
 * The fan-out half of `npm run bench:upgrade`: one upgrade workflow over N tiny application lines on a private
 * stack, and the orchestration time per line (a transfer cycle's wall time minus its training-queue activities).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import proto from '@temporalio/proto';
import { PRESETS } from '../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../schemas/defaults.ts';
import { sendDrop, waitForCycle } from '../client/ops.ts';
import { upgradeResult } from '../client/upgrades.ts';
import { transferCycleId, upgradeWorkflowId } from '../schemas/contracts/ids.ts';
import { generalText, rng } from '../bench/scenario.ts';
import { startPrivateStack } from './stack/private-stack.ts';

const { EventType } = proto.temporal.api.enums.v1;

export interface FanoutResult {
  lines: number;
  /** Per line: its transfer cycle's wall time minus its training-queue activities (scheduled to completed). */
  p50OverheadMsPerLine: number;
  p95OverheadMsPerLine: number;
  meanOverheadMsPerLine: number;
  /** The upgrade workflow's wall time over the lines, training included (one training worker serves them all). */
  upgradeWallMsPerLine: number;
  /** Per line, the training-queue time of its transfer (training, evaluation, flip counting). */
  p50TrainingQueueMsPerLine: number;
  verdicts: Record<string, number>;
  setupMs: number;
}

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

export async function runFanout(opts: { lines: number; log: (s: string) => void; keep?: boolean }): Promise<FanoutResult> {
  const taskQueue = 'bench';
  const t0 = performance.now();
  const { dropDir, client, installation, close } = await startPrivateStack('bench-upgrade', { taskQueue, keep: opts.keep });
  const t = { client, taskQueue };
  const reg = installation.registry;
  // Training is not what is measured: two steps, no checkpoints; gates that pass any trained model, no probes (so no flips).
  const recipe = { ...DEFAULT_RECIPE, steps: 2, batchSize: 4, warmupSteps: 1, checkpointEvery: 100, replayBudget: 20 };
  const gateRules = { ...DEFAULT_GATE_RULES, minImprovement: { loss: -10, exactMatch: -1 }, maxRegression: { loss: 10, exactMatch: 1 } };
  const foundation = 'fbase';
  const write = (name: string, seed: number, n: number) => {
    const path = join(dropDir, name);
    writeFileSync(path, generalText(rng(seed), n).map((r) => JSON.stringify(r)).join('\n') + '\n');
    return path;
  };
  const promote = async (line: string, file: string) => {
    const { request } = await sendDrop(t, line, file);
    const s = await waitForCycle(client, line, request.digest, { timeoutMs: 30 * 60_000 });
    if (s.verdict !== 'promoted') throw new Error(`bench:upgrade setup: ${line} was not promoted: ${s.reason}`);
  };
  try {
    await reg.ensureLine({ name: foundation, kind: 'foundation', modelConfig: PRESETS.tiny, recipe, gateRules, promotion: DEFAULT_PROMOTION, actor: 'bench' });
    await promote(foundation, write('base-1.jsonl', 1, 12));
    const names = Array.from({ length: opts.lines }, (_, i) => `app-${i}`);
    for (const name of names) {
      await reg.ensureLine({ name, kind: 'application', foundationLine: foundation, modelConfig: PRESETS.tiny, recipe, gateRules, promotion: DEFAULT_PROMOTION, actor: 'bench' });
      await reg.updateLine({ name, upgradePolicy: 'auto', actor: 'bench', reason: 'bench: follow the foundation' });
    }
    opts.log(`fan-out: giving ${opts.lines} application lines a stable version`);
    // Eight at a time: the one training worker takes them in turn anyway.
    for (let i = 0; i < names.length; i += 8) {
      await Promise.all(names.slice(i, i + 8).map((name, j) => promote(name, write(`${name}.jsonl`, 100 + i + j, 4))));
    }
    const setupMs = performance.now() - t0;
    opts.log(`fan-out: promoting ${foundation}@2; the line workflow starts the upgrade over every auto line`);
    const upgradeStarted = performance.now();
    await promote(foundation, write('base-2.jsonl', 2, 12));
    const id = upgradeWorkflowId(foundation, 2);
    let result;
    for (;;) {
      try {
        result = await upgradeResult(t, id);
        break;
      } catch (err) {
        // The line workflow starts the upgrade right after its cycle; until then there is no such workflow.
        if ((err as Error).name !== 'WorkflowNotFoundError') throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const upgradeWallMs = performance.now() - upgradeStarted;
    const verdicts: Record<string, number> = {};
    for (const d of result.done) verdicts[d.verdict] = (verdicts[d.verdict] ?? 0) + 1;
    const overheads: number[] = [];
    const queueTimes: number[] = [];
    for (const name of names) {
      const events = (await client.workflow.getHandle(transferCycleId(name, foundation, 2)).fetchHistory()).events ?? [];
      const scheduled = new Map<number, { at: number; queue: string }>();
      let onTrainingQueue = 0;
      for (const e of events) {
        const a = e.activityTaskScheduledEventAttributes;
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && a) scheduled.set(Number(e.eventId), { at: ms(e.eventTime), queue: a.taskQueue?.name ?? '' });
        const done = e.activityTaskCompletedEventAttributes;
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED && done) {
          const s = scheduled.get(Number(done.scheduledEventId));
          if (s && s.queue !== taskQueue) onTrainingQueue += ms(e.eventTime) - s.at;
        }
      }
      const total = ms(events.at(-1)?.eventTime) - ms(events[0]?.eventTime);
      overheads.push(total - onTrainingQueue);
      queueTimes.push(onTrainingQueue);
    }
    return {
      lines: opts.lines,
      p50OverheadMsPerLine: Math.round(pct(overheads, 50)),
      p95OverheadMsPerLine: Math.round(pct(overheads, 95)),
      meanOverheadMsPerLine: Math.round(overheads.reduce((a, b) => a + b, 0) / overheads.length),
      upgradeWallMsPerLine: Math.round(upgradeWallMs / opts.lines),
      p50TrainingQueueMsPerLine: Math.round(pct(queueTimes, 50)),
      verdicts,
      setupMs: Math.round(setupMs),
    };
  } finally {
    await close();
  }
}
