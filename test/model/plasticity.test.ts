import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { evaluateLoss } from '../../model/evaluate.ts';
import {
  type PlasticityOptions,
  measurePlasticity,
  mlpActivity,
  probeLearning,
  probeTask,
  resetDormantUnits,
  resetUnits,
  applyInterventions,
  SHRINK_PERTURB,
  shrinkAndPerturb,
} from '../../model/plasticity.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import { type Weights, cloneWeights } from '../../model/weights.ts';
import { TEST_BACKENDS } from './fixtures.ts';

const config = preset('tiny', { context: 48 });
// A few steps: enough that a fresh tiny model learns the probe's format, a second or so per probe.
const budget: PlasticityOptions = { facts: 8, steps: 20, batchSize: 8, learningRate: 1e-2, warmupSteps: 2, seed: 5 };

/** A model that lost its plasticity: every matrix inflated 30x and the MLP units driven dead by a large negative bias. */
function eroded(): Weights {
  const w = cloneWeights(initWeights(config, 2));
  for (const [name, t] of w) {
    if (name.endsWith('.weight') || name.endsWith('_emb')) for (let i = 0; i < t.data.length; i++) t.data[i]! *= 30;
    if (name.endsWith('mlp.fc.bias')) t.data.fill(-10);
  }
  return w;
}

describe('plasticity record (model/plasticity.ts)', () => {
  it.each(TEST_BACKENDS)('on %s: a fresh model of another seed scores ~1, an eroded one far below, and no tensor leaks', async (backend) => {
    await initBackend({ force: backend });
    const before = tf.memory().numTensors;
    const reference = await probeLearning(config, initWeights(config, 1), budget);
    const fresh = await measurePlasticity(config, initWeights(config, 2), { initSeed: 1, budget, reference });
    const bad = await measurePlasticity(config, eroded(), { initSeed: 1, budget, reference });
    expect(tf.memory().numTensors).toBe(before);

    expect(fresh.ratio).toBeGreaterThan(0.9);
    expect(fresh.ratio).toBeLessThan(1.1);
    expect(fresh.weightNormGrowth).toBeCloseTo(1, 1);
    expect(fresh.dormantFraction).toBe(0);
    expect(fresh.dormantTau).toBe(0.1);
    expect(fresh.gradientNorm).toBeGreaterThan(0);
    // Not capped: the eroded model learns the probe much worse than a fresh one, and the ratio says so.
    expect(bad.ratio).toBeLessThan(0.8);
    expect(bad.probeLoss).toBeGreaterThan(fresh.probeLoss);
    expect(bad.weightNormGrowth).toBeGreaterThan(5);
    expect(bad.dormantFraction).toBeGreaterThan(0.3);
    expect(bad.effectiveRank).toBeLessThan(fresh.effectiveRank);
    expect(fresh.effectiveRank).toBeGreaterThan(1);
    expect(fresh.effectiveRank).toBeLessThanOrEqual(fresh.mlpWidth);
  });

  it('the ratio is not capped above either: a shrunk-and-perturbed eroded model learns the probe better than a fresh one', async () => {
    await initBackend({ force: 'wasm' });
    const reference = await probeLearning(config, initWeights(config, 1), budget);
    const restored = await measurePlasticity(config, shrinkAndPerturb(config, eroded(), { shrink: 0.1, noise: 0.5, seed: 3 }), {
      initSeed: 1,
      budget,
      reference,
    });
    const bad = await measurePlasticity(config, eroded(), { initSeed: 1, budget, reference });
    expect(restored.ratio).toBeGreaterThan(bad.ratio + 0.3);
    expect(restored.ratio).toBeGreaterThan(1);
    expect(restored.weightNormGrowth).toBeLessThan(bad.weightNormGrowth / 5);
  });
});

describe('interventions', () => {
  it('shrink-and-perturb is λ·W + σ·W_fresh on matrices and biases, and pulls layer-norm gains toward 1', () => {
    const w = initWeights(config, 2);
    const fresh = initWeights(config, 3);
    const out = shrinkAndPerturb(config, w, { shrink: 0.5, noise: 0.1, seed: 3 });
    const q = w.get('blocks.0.attn.qkv.weight')!.data;
    expect(out.get('blocks.0.attn.qkv.weight')!.data[7]).toBeCloseTo(0.5 * q[7]! + 0.1 * fresh.get('blocks.0.attn.qkv.weight')!.data[7]!, 6);
    const g = cloneWeights(w);
    g.get('ln_f.gain')!.data.fill(3);
    expect(shrinkAndPerturb(config, g, { shrink: 0.5, noise: 0.1, seed: 3 }).get('ln_f.gain')!.data[0]).toBeCloseTo(2, 6);
    expect(w.get('blocks.0.attn.qkv.weight')!.data).toEqual(q); // the input is not changed
  });

  it('a dormant reset re-initialises the units incoming weights, zeroes bias, outgoing weights and their optimizer moments, and keeps the function', async () => {
    await initBackend({ force: 'cpu' });
    const w = cloneWeights(initWeights(config, 2));
    // Units 0..9 of the only layer are driven dead.
    w.get('blocks.0.mlp.fc.bias')!.data.fill(-10, 0, 10);
    const docs = probeTask(5, 8).docs;
    const width = w.get('blocks.0.mlp.fc.weight')!.shape[1]!;
    const m = new Map([...w].map(([n, t]) => [n, new Float32Array(t.data.length).fill(1)]));
    const { weights: out, reset, fraction } = resetDormantUnits(config, w, docs, { seed: 7, moments: [m] });
    expect(reset).toBeGreaterThanOrEqual(10);
    expect(fraction).toBeCloseTo(reset / width, 6);
    const fc = out.get('blocks.0.mlp.fc.weight')!;
    const fresh = initWeights(config, 7).get('blocks.0.mlp.fc.weight')!.data;
    expect(fc.data[3 * width + 4]).toBe(fresh[3 * width + 4]);
    expect(fc.data[3 * width + 100]).toBe(w.get('blocks.0.mlp.fc.weight')!.data[3 * width + 100]);
    expect(out.get('blocks.0.mlp.fc.bias')!.data[4]).toBe(0);
    const proj = out.get('blocks.0.mlp.proj.weight')!;
    expect([...proj.data.subarray(4 * 32, 5 * 32)].every((x) => x === 0)).toBe(true);
    expect(m.get('blocks.0.mlp.fc.weight')![3 * width + 4]).toBe(0);
    expect(m.get('blocks.0.mlp.fc.weight')![3 * width + 100]).toBe(1);
    expect(m.get('blocks.0.mlp.proj.weight')![4 * 32]).toBe(0);

    // Outgoing weights zeroed: the network computes what it did before the reset (dead units gave ~0 anyway).
    const lossOf = (weights: Weights) => {
      const model = LanguageModel.create(config, weights);
      try {
        return evaluateLoss(model, docs).meanLoss;
      } finally {
        model.dispose();
      }
    };
    expect(lossOf(out)).toBeCloseTo(lossOf(w), 3);
    // And the reset units are alive again.
    const model = LanguageModel.create(config, out);
    const activity = mlpActivity(model, docs)[0]!;
    model.dispose();
    const avg = activity.reduce((a, b) => a + b, 0) / activity.length;
    expect(activity[4]).toBeGreaterThan(0.1 * avg);
    expect(resetUnits(config, w, [[]], 7).reset).toBe(0);
  });
});

describe('applyInterventions (what trainCandidate applies to the starting weights)', () => {
  it('shrinks and perturbs, then resets the dormant units, deterministically', async () => {
    await initBackend({ force: 'wasm' });
    const w = cloneWeights(initWeights(config, 2));
    w.get('blocks.0.mlp.fc.bias')!.data.fill(-10, 0, 10);
    const a = applyInterventions(config, w, ['shrink-perturb', 'dormant-reset'], 11);
    const b = applyInterventions(config, w, ['shrink-perturb', 'dormant-reset'], 11);
    expect(a.applied[0]).toEqual({ intervention: 'shrink-perturb' });
    expect(a.applied[1]!.intervention).toBe('dormant-reset');
    expect(a.applied[1]!.reset).toBeGreaterThanOrEqual(10);
    expect(a.weights.get('blocks.0.mlp.fc.bias')!.data[0]).toBe(0);
    expect(a.weights.get('blocks.0.attn.qkv.weight')!.data).toEqual(b.weights.get('blocks.0.attn.qkv.weight')!.data);
    const q = w.get('blocks.0.attn.qkv.weight')!.data[5]!;
    expect(Math.abs(a.weights.get('blocks.0.attn.qkv.weight')!.data[5]! - SHRINK_PERTURB.shrink * q)).toBeLessThan(0.01);
    expect(applyInterventions(config, w, [], 11).weights).toBe(w);
  });
});
