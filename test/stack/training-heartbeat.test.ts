/**
 * trainCandidate heartbeats on a timer, not only at its progress reports (every 1% of the steps): a `base` step
 * takes 1-4 s, so 12 steps between reports could outlast the 30 s heartbeat timeout and the server would retry a
 * healthy run (bench:prose saw 4 attempts). Real registry, store, model and tfjs backend, in the SDK's activity
 * test environment; the interval is shortened so a tiny model shows the same shape in seconds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestActivities } from '../../activities/ingest.ts';
import type { TrainingOutcome } from '../../activities/types.ts';
import { trainingActivities, type TrainingHeartbeat } from '../../activities/train.ts';
import { sha256Hex } from '../../domain/drops.ts';
import { PRESETS } from '../../model/config.ts';
import { activityDeps, FIXTURE_LINE, openTestRegistry, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let dropDigest: string;
const line = 'beating';
const config = PRESETS.tiny;
// No progressTo: nothing is signalled.
const deps = (trainingHeartbeatMs?: number) => activityDeps(t, { codeRevision: 'rev-a', ...(trainingHeartbeatMs ? { trainingHeartbeatMs } : {}) });

beforeAll(async () => {
  t = await openTestRegistry('training_heartbeat');
  await t.registry.ensureLine({ name: line, kind: 'foundation', ...FIXTURE_LINE, modelConfig: config, actor: 'test' });
  const dir = join(t.dir, 'drops');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'mill.jsonl');
  const text =
    Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `the mill by the river opens at ${i % 12} and closes at ${(i % 12) + 8}.` })).join('\n') + '\n';
  writeFileSync(file, text);
  const ingested = await ingestActivities(deps()).ingestDrop({
    line,
    request: { path: file, digest: sha256Hex(Buffer.from(text)), source: 'mill' },
    key: 'k1',
  });
  if (ingested.status !== 'accepted') throw new Error(`drop not accepted: ${ingested.status}`);
  dropDigest = ingested.digest;
}, 120_000);
afterAll(async () => {
  await t?.close();
});

/** Trains 400 tiny steps with a 15 ms heartbeat timer; returns the step of every heartbeat. */
async function train() {
  const env = new MockActivityEnvironment();
  const beats: number[] = [];
  env.on('heartbeat', (d: unknown) => beats.push((d as TrainingHeartbeat).step));
  const started = performance.now();
  const outcome: TrainingOutcome = await env.run(() =>
    trainingActivities(deps(15)).trainCandidate({
      line,
      key: 'run-timer',
      init: null,
      dropDigest,
      replay: [],
      recipe: { ...FIXTURE_LINE.recipe, steps: 400, learningRate: 0.003 },
      modelConfig: config,
    }),
  );
  return { outcome, beats, wallMs: performance.now() - started };
}

describe('trainCandidate heartbeats', () => {
  it('beats on its timer between progress reports, so a slow step rate cannot outlast the heartbeat timeout', { timeout: 120_000 }, async () => {
    const { outcome, beats, wallMs } = await train();
    expect(outcome.steps).toBe(400);
    // Progress reports (every 4 steps) and checkpoints beat with a new step, or at a checkpoint the report's step
    // again (a handful); the timer's beats repeat the last step, one every 15 ms of the run but at most one between
    // two steps (the timer fires when a step yields), so a slow machine gets one a step.
    const repeats = beats.filter((step, i) => i > 0 && step === beats[i - 1]).length;
    expect(repeats).toBeGreaterThan(Math.max(20, Math.min(wallMs / 15, 400) / 3));
    // No beat after the run ended: the timer is cleared.
    const count = beats.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(beats.length).toBe(count);
  });
});
