/**
 * `npm run bench:cycle`: where a release cycle's wall time goes. Starts a private stack (its own PostgreSQL,
 * Temporal dev server and worker processes in a temporary folder), runs N cycles of the tiny model, and
 * splits each cycle's time, read from its Temporal history, into training, evaluation and orchestration
 * (everything else: workflow tasks, registry activities, ingest, queueing between them).
 *
 *   npm run bench:cycle [-- --cycles 10 --steps 60]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import proto from '@temporalio/proto';
import { PRESETS } from '../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../schemas/defaults.ts';
import { sendDrop, waitForCycle } from '../client/ops.ts';
import { generalText, rng } from '../bench/scenario.ts';
import { startPrivateStack } from './stack/private-stack.ts';

const { EventType } = proto.temporal.api.enums.v1;
const opts = new Command('bench:cycle')
  .option('--cycles <n>', 'cycles to run', (v) => Number(v), 10)
  .option('--steps <n>', 'training steps per cycle', (v) => Number(v), 60)
  .option('--keep', 'keep the temporary folder')
  .option('--timeline', "print the last cycle's history events with the gap before each")
  .parse()
  .opts<{ cycles: number; steps: number; keep?: boolean; timeline?: boolean }>();

const { dropDir, stack, client, installation, close } = await startPrivateStack('bench-cycle', { taskQueue: 'bench', keep: opts.keep });
const line = 'bench';
await installation.registry
  .ensureLine({
    name: line,
    kind: 'foundation',
    modelConfig: PRESETS.tiny,
    recipe: { ...DEFAULT_RECIPE, steps: opts.steps, batchSize: 8, warmupSteps: 5, checkpointEvery: 20 },
    gateRules: { ...DEFAULT_GATE_RULES, minImprovement: { loss: 0, exactMatch: 0 }, maxRegression: { loss: 10, exactMatch: 1 } },
    promotion: DEFAULT_PROMOTION,
    actor: 'bench',
  })
  .catch(async (err: unknown) => {
    await close(); // removes the temporary folder (unless --keep) before the error ends the run
    throw err;
  });

interface Split {
  total: number;
  training: number;
  evaluation: number;
  orchestration: number;
  verdict: string;
}
const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

async function split(cycleId: string): Promise<Omit<Split, 'verdict'>> {
  const history = await client.workflow.getHandle(cycleId).fetchHistory();
  const events = history.events ?? [];
  const scheduled = new Map<number, string>();
  const started = new Map<number, number>();
  let training = 0;
  let evaluation = 0;
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
      scheduled.set(Number(e.eventId), e.activityTaskScheduledEventAttributes!.activityType!.name!);
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
      started.set(Number(e.activityTaskStartedEventAttributes!.scheduledEventId), ms(e.eventTime));
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const id = Number(e.activityTaskCompletedEventAttributes!.scheduledEventId);
      const took = ms(e.eventTime) - (started.get(id) ?? ms(e.eventTime));
      const name = scheduled.get(id);
      if (name === 'trainCandidate') training += took;
      if (name === 'evaluateVersions') evaluation += took;
    }
  }
  const total = ms(events.at(-1)!.eventTime) - ms(events[0]!.eventTime);
  return { total, training, evaluation, orchestration: total - training - evaluation };
}

const results: Split[] = [];
try {
  for (let i = 0; i < opts.cycles; i++) {
    const file = join(dropDir, `drop-${i}.jsonl`);
    writeFileSync(
      file,
      generalText(rng(100 + i), 40)
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const { request } = await sendDrop({ client, taskQueue: 'bench' }, line, file);
    const summary = await waitForCycle(client, line, request.digest);
    results.push({ ...(await split(summary.cycleId)), verdict: summary.verdict });
    const r = results.at(-1)!;
    console.log(
      `${summary.cycleId.padEnd(16)} ${r.verdict.padEnd(9)} total ${r.total.toFixed(0).padStart(6)} ms  training ${r.training.toFixed(0).padStart(6)} ms  evaluation ${r.evaluation.toFixed(0).padStart(5)} ms  orchestration ${r.orchestration.toFixed(0).padStart(5)} ms`,
    );
  }
  if (opts.timeline) await printTimeline(`cycle:${line}:${results.length}`);
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  console.log(`\n${results.length} cycles of the tiny model (${opts.steps} steps each) on ${stack.state.temporal.address}, one training worker`);
  for (const k of ['total', 'training', 'evaluation', 'orchestration'] as const) {
    const xs = results.map((r) => r[k]);
    console.log(
      `${k.padEnd(14)} p50 ${pct(xs, 50).toFixed(0).padStart(6)} ms   p95 ${pct(xs, 95).toFixed(0).padStart(6)} ms   mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0).padStart(6)} ms`,
    );
  }
  const p50 = pct(
    results.map((r) => r.orchestration),
    50,
  );
  console.log(`orchestration overhead p50 ${p50.toFixed(0)} ms (goal < 300 ms): ${p50 < 300 ? 'met' : 'NOT met'}`);
} finally {
  await close();
}

/** Each event of a cycle's history with the time since the previous one: where orchestration time goes. */
async function printTimeline(cycleId: string) {
  const events = (await client.workflow.getHandle(cycleId).fetchHistory()).events ?? [];
  const names = new Map<number, string>();
  const t0 = ms(events[0]?.eventTime);
  let prev = t0;
  for (const e of events) {
    const t = ms(e.eventTime);
    if (e.activityTaskScheduledEventAttributes) names.set(Number(e.eventId), e.activityTaskScheduledEventAttributes.activityType!.name!);
    const ref = Number(e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId ?? 0);
    const what = names.get(Number(e.eventId)) ?? names.get(ref) ?? e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName ?? '';
    console.log(
      `${(t - t0).toFixed(0).padStart(6)} ms  +${(t - prev).toFixed(0).padStart(4)}  ${EventType[e.eventType!]!.replace('EVENT_TYPE_', '').toLowerCase()} ${what}`,
    );
    prev = t;
  }
}
