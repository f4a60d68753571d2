/**
 * The training queue's measurePlasticity activity on a real registry, store, model and tfjs backend (in the SDK's
 * activity test environment, because it heartbeats): it measures a version once and records it.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluationActivities } from '../../activities/evaluate.ts';
import { PRESETS } from '../../model/config.ts';
import type { PlasticityRecord } from '../../model/plasticity.ts';
import { initWeights } from '../../model/transformer.ts';
import { saveModel } from '../../model/weights.ts';
import { activityDeps, FIXTURE_LINE, openTestRegistry, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
const line = 'plastic-act';
const config = PRESETS.tiny;

beforeAll(async () => {
  t = await openTestRegistry('plasticity_activity');
  await t.registry.ensureLine({ name: line, kind: 'foundation', ...FIXTURE_LINE, modelConfig: config, actor: 'test' });
  const weightsDigest = await t.store.put(saveModel(config, initWeights(config, 3)));
  await t.registry.startTrainingRun({ line, key: 'run-1', parentVersion: null, recipe: FIXTURE_LINE.recipe, seed: 3, drops: [] });
  await t.registry.finishTrainingRun('run-1', { status: 'completed', artifactDigest: weightsDigest });
  await t.registry.createVersion({
    line,
    trainingRunKey: 'run-1',
    parentVersion: null,
    weightsDigest,
    recipe: FIXTURE_LINE.recipe,
    drops: [],
    codeRevision: 'rev-a',
    seed: 3,
    backend: 'cpu',
    compute: { tokens: 0, flops: 0, wallMs: 0 },
  });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe('measurePlasticity (activity)', () => {
  it('measures an untrained version as exactly a fresh model (ratio 1), records it, and returns the record on a retry', async () => {
    const acts = evaluationActivities(activityDeps(t, { codeRevision: 'rev-a' }));
    const record: PlasticityRecord = await new MockActivityEnvironment().run(() => acts.measurePlasticity({ line, version: 1, seed: 3 }));
    expect(record.ratio).toBeCloseTo(1, 9);
    expect(record.weightNormGrowth).toBeCloseTo(1, 9);
    expect(record.dormantTau).toBe(0.1);
    expect(record.probeLoss).toBeLessThan(record.uninformedLoss);
    expect((await t.registry.getPlasticity(line, 1))[0]!.record).toEqual(JSON.parse(JSON.stringify(record)));
    const again = await new MockActivityEnvironment().run(() => acts.measurePlasticity({ line, version: 1, seed: 3 }));
    expect(again).toEqual(JSON.parse(JSON.stringify(record)));
  }, 120_000);
});
