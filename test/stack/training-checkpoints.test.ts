/**
 * A training run keeps only the newest `keepCheckpoints` of its checkpoints (its line's limit; issue 33, item 2)
 * in the store and in the run's record, on a real registry, store, model and backend in the SDK's activity test
 * environment; a retry still resumes from the newest and ends with the weights of an uninterrupted run, and one
 * whose heartbeat names a deleted checkpoint trains from the start to the same weights.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ingestActivities } from '../../activities/ingest.ts';
import { trainingActivities, type TrainingHeartbeat } from '../../activities/train.ts';
import type { TrainInput } from '../../activities/types.ts';
import { sha256Hex } from '../../domain/drops.ts';
import { PRESETS } from '../../model/config.ts';
import { loadModel } from '../../model/weights.ts';
import { activityDeps, FIXTURE_LINE, openTestRegistry, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let dropDigest: string;
const line = 'pruned';
const config = PRESETS.tiny;
const deps = () => activityDeps(t);

beforeAll(async () => {
  t = await openTestRegistry('training_checkpoints');
  // Two checkpoints kept; a checkpoint as often as every 5 steps allowed.
  await t.registry.ensureLine({
    name: line,
    kind: 'foundation',
    ...FIXTURE_LINE,
    modelConfig: config,
    limits: { keepCheckpoints: 2, minCheckpointEvery: 5 },
    actor: 'test',
  });
  const dir = join(t.dir, 'drops');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tide.jsonl');
  const text = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `high tide at the ${i % 5} mark comes at ${(i % 11) + 1} pm.` })).join('\n') + '\n';
  writeFileSync(file, text);
  const ingested = await ingestActivities(deps()).ingestDrop({ line, request: { path: file, digest: sha256Hex(Buffer.from(text)), source: 'tide' }, key: 'k1' });
  if (ingested.status !== 'accepted') throw new Error(`drop not accepted: ${ingested.status}`);
  dropDigest = ingested.digest;
}, 120_000);
afterAll(async () => t?.close());

const input = (key: string): TrainInput => ({
  line,
  key,
  init: null,
  dropDigest,
  replay: [],
  recipe: { ...FIXTURE_LINE.recipe, steps: 60, checkpointEvery: 5, warmupSteps: 5, learningRate: 0.003 },
  modelConfig: config,
});

/** One attempt; `cancelAt`: cancel it once a heartbeat names a checkpoint at or past that step. Returns every heartbeat. */
async function attempt(i: TrainInput, opts: { heartbeatDetails?: TrainingHeartbeat; cancelAt?: number } = {}) {
  const env = new MockActivityEnvironment(opts.heartbeatDetails ? { heartbeatDetails: opts.heartbeatDetails } : {});
  const beats: TrainingHeartbeat[] = [];
  env.on('heartbeat', (d: unknown) => {
    const b = d as TrainingHeartbeat;
    beats.push(b);
    if (opts.cancelAt !== undefined && (b.checkpointStep ?? 0) >= opts.cancelAt) env.cancel();
  });
  const outcome = await env.run(() => trainingActivities(deps()).trainCandidate(i)).catch((err: unknown) => err);
  return { outcome, beats };
}

const weightsOf = async (digest: string) => [...loadModel(await t.store.get(digest)).weights.values()].map((w) => Array.from(w.data));
/** Every checkpoint digest an attempt named in its heartbeats, by step. */
const named = (beats: TrainingHeartbeat[]) => [...new Map(beats.filter((b) => b.checkpoint).map((b) => [b.checkpointStep!, b.checkpoint!])).entries()];

it('keeps the newest checkpoints of a run in the store and its record, and a retry resumes from the newest to the same weights', { timeout: 180_000 }, async () => {
  // Uninterrupted: 12 checkpoints written (every 5 of 60 steps), the 2 newest kept.
  const whole = await attempt(input('whole'));
  const wholeOutcome = whole.outcome as { weightsDigest: string; resumedFromStep: number };
  const written = named(whole.beats);
  expect(written.map(([step]) => step)).toEqual([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]);
  const kept = await Promise.all(written.map(async ([step, digest]) => [step, await t.store.has(digest)] as const));
  expect(kept.filter(([, has]) => has).map(([step]) => step)).toEqual([55, 60]);
  expect((await t.registry.getTrainingRun('whole'))!.checkpoints.map((c) => c.step)).toEqual([55, 60]);

  // Interrupted after its checkpoint at step 30, then retried with its last heartbeat: it resumes there.
  const first = await attempt(input('resumed'), { cancelAt: 30 });
  expect(first.outcome).toBeInstanceOf(CancelledFailure);
  const last = first.beats.at(-1)!;
  expect(await t.store.has(last.checkpoint!)).toBe(true);
  const stored = await Promise.all(named(first.beats).map(async ([, d]) => t.store.has(d)));
  expect(stored.filter(Boolean).length).toBeLessThanOrEqual(2);
  const retry = await attempt(input('resumed'), { heartbeatDetails: last });
  const retryOutcome = retry.outcome as { weightsDigest: string; resumedFromStep: number };
  expect(retryOutcome.resumedFromStep).toBe(last.checkpointStep);
  expect(await weightsOf(retryOutcome.weightsDigest)).toEqual(await weightsOf(wholeOutcome.weightsDigest));
  const run = (await t.registry.getTrainingRun('resumed'))!;
  expect(run.checkpoints.filter((c) => !c.resumed).map((c) => c.step)).toEqual([55, 60]);
  expect(run.checkpoints.find((c) => c.resumed)).toMatchObject({ digest: last.checkpoint, step: last.checkpointStep });
  for (const c of run.checkpoints) expect(await t.store.has(c.digest)).toBe(true);

  // A heartbeat that lags behind the pruning names a deleted checkpoint: the retry trains from the start instead.
  const [gone] = written.find(([step]) => step === 10)!.slice(1) as [string];
  expect(await t.store.has(gone)).toBe(false);
  const fallback = await attempt(input('fallback'), { heartbeatDetails: { step: 10, checkpoint: gone, checkpointStep: 10 } });
  const fallbackOutcome = fallback.outcome as { weightsDigest: string; resumedFromStep: number };
  expect(fallbackOutcome.resumedFromStep).toBe(0);
  expect(await weightsOf(fallbackOutcome.weightsDigest)).toEqual(await weightsOf(wholeOutcome.weightsDigest));
});

it('refuses to train a recipe over its line limits, non-retryable, naming the limit, with the run recorded as failed', async () => {
  // What ingest would have refused (a limit tightened after the drop came in, or a forged activity input).
  const { outcome } = await attempt({ ...input('too-long'), recipe: { ...input('too-long').recipe, steps: 5000, checkpointEvery: 1 } });
  expect(outcome).toMatchObject({ type: 'RecipeLimitError', nonRetryable: true });
  expect((outcome as Error).message).toMatch(/steps 5000 is over the line's limit maxSteps 2000; checkpointEvery 1 is under the line's limit minCheckpointEvery 5/);
  expect(await t.registry.getTrainingRun('too-long')).toMatchObject({ status: 'failed' });
});
