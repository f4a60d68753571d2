/**
 * trainCandidate retried after its run was already recorded, on a real registry, store, model and backend in the
 * SDK's activity test environment. A worker can die after `finishTrainingRun` committed and before Temporal heard
 * the activity complete; the server's retry must return what was recorded, not train again (redoing steps and, on
 * a backend whose kernels round differently, registering other weights than the run records). Likewise a run
 * recorded as failed stays failed, and of two attempts racing (a stalled worker the server gave up on, and its
 * retry) the one that finished first is the candidate.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestActivities } from '../../activities/ingest.ts';
import { rlActivities } from '../../activities/rl.ts';
import type { RlOutcome } from '../../activities/types.ts';
import { trainingActivities, type TrainingHeartbeat } from '../../activities/train.ts';
import type { TrainInput, TrainingOutcome } from '../../activities/types.ts';
import { sha256Hex } from '../../domain/drops.ts';
import { PRESETS } from '../../model/config.ts';
import { activityDeps, FIXTURE_LINE, openTestRegistry, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let dropDigest: string;
const line = 'retried';
const config = PRESETS.tiny;
// No progressTo: nothing is signalled.
const deps = () => activityDeps(t, { codeRevision: 'rev-a' });

beforeAll(async () => {
  t = await openTestRegistry('training_retry');
  await t.registry.ensureLine({ name: line, kind: 'foundation', ...FIXTURE_LINE, modelConfig: config, actor: 'test' });
  const dir = join(t.dir, 'drops');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'ferry.jsonl');
  const text =
    Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `the ferry leaves pier ${i % 7} at ${(i % 9) + 6} every morning.` })).join('\n') + '\n';
  writeFileSync(file, text);
  const ingested = await ingestActivities(deps()).ingestDrop({
    line,
    request: { path: file, digest: sha256Hex(Buffer.from(text)), source: 'ferry' },
    key: 'k1',
  });
  if (ingested.status !== 'accepted') throw new Error(`drop not accepted: ${ingested.status}`);
  dropDigest = ingested.digest;
}, 120_000);
afterAll(async () => t?.close());

const input = (key: string, recipe: Partial<TrainInput['recipe']> = {}): TrainInput => ({
  line,
  key,
  init: null,
  dropDigest,
  replay: [],
  recipe: { ...FIXTURE_LINE.recipe, steps: 60, checkpointEvery: 20, learningRate: 0.003, ...recipe },
  modelConfig: config,
});

/** One attempt, with the heartbeat details the server hands a retry; returns its outcome and the steps it trained. */
async function attempt(i: TrainInput, heartbeatDetails?: TrainingHeartbeat) {
  const env = new MockActivityEnvironment(heartbeatDetails ? { heartbeatDetails } : {});
  const steps: number[] = [];
  env.on('heartbeat', (d: unknown) => steps.push((d as TrainingHeartbeat).step));
  const outcome: TrainingOutcome = await env.run(() => trainingActivities(deps()).trainCandidate(i));
  return { outcome, steps };
}

const auditCount = async (action: string, key: string) =>
  (await t.app.sql<{ n: number }[]>`select count(*)::int as n from audit_log where action = ${action} and subject = ${`${line}/run/${key}`}`)[0]!.n;

it('returns the recorded outcome to a retry of an attempt that finished the run, training nothing', { timeout: 120_000 }, async () => {
  const first = await attempt(input('finished'));
  expect(first.outcome.steps).toBe(60);
  // The retry gets the first attempt's last heartbeat (its checkpoint at step 40), as the server would hand it over.
  const checkpoint = (await t.registry.getTrainingRun('finished'))!.checkpoints.find((c) => c.step === 40)!;
  const retry = await attempt(input('finished'), { step: 40, checkpoint: checkpoint.digest, checkpointStep: 40 });
  expect(retry.steps).toEqual([]); // no heartbeat: no step trained
  const { lossCurve: _curve, ...recorded } = first.outcome;
  expect(retry.outcome).toMatchObject({ ...recorded, lossCurve: [] });
  expect(await auditCount('training.finish', 'finished')).toBe(1);
});

it('says where a recorded run resumed from', { timeout: 120_000 }, async () => {
  const cut = await attempt(input('resumed'));
  const from = (await t.registry.getTrainingRun('resumed'))!.checkpoints.find((c) => c.step === 20)!;
  // A run that resumed at step 20 (as a search's winning trial hands over its checkpoint).
  const resumed = await attempt({ ...input('resumed-2'), resumeFrom: from.digest });
  expect(cut.outcome.resumedFromStep).toBe(0);
  expect(resumed.outcome.resumedFromStep).toBe(20);
  expect((await attempt({ ...input('resumed-2'), resumeFrom: from.digest })).outcome).toMatchObject({
    resumedFromStep: 20,
    weightsDigest: resumed.outcome.weightsDigest,
  });
});

it('fails a retry of a run recorded as failed, non-retryable, with the recorded reason', async () => {
  await t.registry.startTrainingRun({ line, key: 'diverged', parentVersion: null, recipe: input('diverged').recipe, seed: 7, drops: [dropDigest] });
  await t.registry.finishTrainingRun('diverged', { status: 'failed', error: 'training diverged at step 12 (loss Infinity)' });
  const err = await attempt(input('diverged')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ nonRetryable: true, message: 'training diverged at step 12 (loss Infinity)' });
});

it('of two attempts racing on one run, both return the weights of the one that finished first', { timeout: 120_000 }, async () => {
  // Different seeds stand in for kernels that round differently: the two attempts train different weights.
  const [a, b] = await Promise.all([attempt(input('raced', { seed: 7 })), attempt(input('raced', { seed: 8, steps: 60 }))]);
  const run = (await t.registry.getTrainingRun('raced'))!;
  expect(a.outcome.weightsDigest).toBe(run.artifactDigest);
  expect(b.outcome.weightsDigest).toBe(run.artifactDigest);
  expect(a.steps.length + b.steps.length).toBeGreaterThan(0);
  expect(await auditCount('training.finish', 'raced')).toBe(1);
});

describe('trainRl retried after its run was recorded', () => {
  const rl = { steps: 4, checkEvery: 2, promptsPerStep: 2, samplesPerPrompt: 2, maxTokens: 4 };
  let feedback: string;
  let reference: { line: string; version: number };
  const rlInput = (key: string) => ({ line, key, reference, dropDigest: feedback, replay: [], recipe: { ...input(key).recipe, rl }, modelConfig: config });
  const rlAttempt = async (key: string) => {
    const env = new MockActivityEnvironment();
    const out: RlOutcome = await env.run(() => rlActivities(deps()).trainRl(rlInput(key)));
    return out;
  };

  /** A run as an earlier attempt left it: started, finished `as` given, and its worker gone. */
  const recordRun = async (key: string, as: Parameters<typeof t.registry.finishTrainingRun>[1]) => {
    await t.registry.startTrainingRun({ line, key, parentVersion: reference.version, recipe: rlInput(key).recipe, seed: 7, drops: [feedback] });
    await t.registry.finishTrainingRun(key, as);
  };

  beforeAll(async () => {
    // A version to start from (trained for real), and a feedback drop of verifier prompts.
    const base = await attempt(input('rl-base'));
    const v = await t.registry.createVersion({
      line,
      trainingRunKey: 'rl-base',
      parentVersion: null,
      weightsDigest: base.outcome.weightsDigest,
      files: [],
      recipe: input('rl-base').recipe,
      drops: [dropDigest],
      codeRevision: 'rev-a',
      seed: 7,
      backend: base.outcome.backend,
      compute: { tokens: base.outcome.tokens, flops: base.outcome.flops, wallMs: base.outcome.wallMs, steps: base.outcome.steps },
    });
    reference = { line, version: v.version };
    const file = join(t.dir, 'drops', 'say.jsonl');
    const text =
      ['one', 'two', 'three', 'four', 'five']
        .map((w) => JSON.stringify({ prompt: `say ${w}:`, verifier: { kind: 'regex', pattern: 'e' }, gold: { kind: 'exact', answer: w } }))
        .join('\n') + '\n';
    writeFileSync(file, text);
    const ingested = await ingestActivities(deps()).ingestDrop({
      line,
      request: { path: file, digest: sha256Hex(Buffer.from(text)), source: 'say', kind: 'feedback' },
      key: 'k-fb',
    });
    if (ingested.status !== 'accepted') throw new Error(`feedback not accepted: ${ingested.status}`);
    feedback = ingested.digest;
  }, 120_000);

  it('trains a completed run again to the same weights on the same backend', { timeout: 120_000 }, async () => {
    const first = await rlAttempt('rl-again');
    const again = await rlAttempt('rl-again');
    expect(again.training.weightsDigest).toBe(first.training.weightsDigest);
    expect(await auditCount('training.finish', 'rl-again')).toBe(1);
  });

  it('ends with the reason, non-retryable, when the recorded run has other weights than the retry trained', { timeout: 120_000 }, async () => {
    const other = await t.store.put(Buffer.from('weights another backend rounded differently'));
    await recordRun('rl-other', { status: 'completed', steps: 4, artifactDigest: other });
    const err = await rlAttempt('rl-other').catch((e: unknown) => e);
    expect(err).toMatchObject({ nonRetryable: true, type: 'RegistryConflictError' });
    expect((err as Error).message).toMatch(new RegExp(`already completed by an earlier attempt with weights ${other.slice(0, 12)}`));
  });

  it('heartbeats before the first held-out check and sampling round, not only after the first step', { timeout: 120_000 }, async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    await env.run(() => rlActivities(deps()).trainRl(rlInput('rl-beat')));
    // Step 0: sent before rlTrain checks the released model and samples, so a slow first step is not a dead worker.
    expect(beats[0]).toEqual({ step: 0, steps: rl.steps });
    expect(beats.at(-1)).toEqual({ step: rl.steps, steps: rl.steps });
  });

  it('fails a retry of a run recorded as failed with the recorded reason', async () => {
    await recordRun('rl-failed', { status: 'failed', error: 'rl: the recipe asks for 0 prompts a step' });
    await expect(rlAttempt('rl-failed')).rejects.toMatchObject({ nonRetryable: true, message: 'rl: the recipe asks for 0 prompts a step' });
  });

  it('refuses an RL update over its line limits, non-retryable, naming the limit, with the run recorded as failed', async () => {
    // What ingest would have refused (a limit tightened after the drop came in, or a forged activity input).
    const forged = { ...rlInput('rl-too-long'), recipe: { ...rlInput('rl-too-long').recipe, rl: { ...rl, steps: 100_000, promptsPerStep: 4, samplesPerPrompt: 64 } } };
    const err = await new MockActivityEnvironment().run(() => rlActivities(deps()).trainRl(forged)).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'RecipeLimitError', nonRetryable: true });
    expect((err as Error).message).toMatch(
      /^RL run rl-too-long: the RL update is outside line retried's limits: rl\.steps 100000 is over the line's limit maxRlSteps 200; rl\.promptsPerStep 4 x rl\.samplesPerPrompt 64 = 256 samples a step is over the line's limit maxRlSamplesPerStep 128; the RL update of 100000 steps x 256 samples of up to 4 tokens = up to [\d.e+]+ FLOPs is over the line's limit maxFlopsPerCycle/,
    );
    expect(await t.registry.getTrainingRun('rl-too-long')).toMatchObject({ status: 'failed', error: (err as Error).message });
  });
});
