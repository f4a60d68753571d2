import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { BatchSampler } from '../../model/data.ts';
import { CheckpointMismatchError, type TrainOptions, learningRateAt, readCheckpoint, trainModel } from '../../model/train.ts';
import { BOS, PAD } from '../../model/tokenizer.ts';
import { initWeights } from '../../model/transformer.ts';
import { weightsDigest } from '../../model/weights.ts';
import { CORPUS, recipe } from './fixtures.ts';

const config = preset('tiny');

function options(overrides: Partial<TrainOptions> = {}): TrainOptions {
  return {
    config,
    init: initWeights(config, 1),
    sources: [{ name: 'drop', weight: 1, docs: CORPUS }],
    recipe: recipe(),
    ...overrides,
  };
}

/** Trains with checkpoints every `every` steps and returns the result and the checkpoints by step. */
async function trainCollecting(opts: TrainOptions, every: number) {
  const checkpoints = new Map<number, Uint8Array>();
  const result = await trainModel({
    ...opts,
    checkpointEvery: every,
    onCheckpoint: async (bytes, step) => {
      checkpoints.set(step, bytes);
    },
  });
  return { result, checkpoints };
}

describe('trainModel', () => {
  it('lowers the loss of a tiny model within a few hundred steps', async () => {
    await initBackend({ force: 'wasm' });
    const result = await trainModel(options({ recipe: recipe({ steps: 200, batchSize: 8, learningRate: 5e-3 }) }));
    expect(result.backend).toBe('wasm-simd');
    expect(result.steps).toBe(200);
    expect(result.lossCurve[0]!).toBeGreaterThan(4.5); // ~ln(259) at init
    expect(result.finalLoss).toBeLessThan(1.5);
    expect(result.tokens).toBe(200 * 8 * config.context);
    expect(result.flops).toBeGreaterThan(0);
  });

  it('gives the same weights for the same seed, different ones for another seed', async () => {
    await initBackend({ force: 'wasm' });
    const a = await trainModel(options());
    const b = await trainModel(options());
    const c = await trainModel(options({ recipe: recipe({ seed: 12 }) }));
    expect(weightsDigest(a.weights)).toBe(weightsDigest(b.weights));
    expect(a.lossCurve).toEqual(b.lossCurve);
    expect(weightsDigest(c.weights)).not.toBe(weightsDigest(a.weights));
  });

  it.each([
    ['wasm', 30, 10, 4],
    ['cpu', 6, 3, 2],
  ])('on %s, a run resumed from its step-k checkpoint ends with the uninterrupted weights', async (backend, steps, k, batchSize) => {
    await initBackend({ force: backend });
    const opts = options({ recipe: recipe({ steps, batchSize, l2Pull: 0.1 }), reference: initWeights(config, 2) });
    const { result: full, checkpoints } = await trainCollecting(opts, k);
    expect([...checkpoints.keys()]).toEqual(Array.from({ length: steps / k }, (_, i) => (i + 1) * k));
    const resumed = await trainModel({ ...opts, resume: checkpoints.get(k)! });
    expect(resumed.steps).toBe(steps);
    expect(weightsDigest(resumed.weights)).toBe(weightsDigest(full.weights));
    expect(resumed.lossCurve).toEqual(full.lossCurve);
    // Wall time travels with the checkpoint: the resumed run counts the steps before it, once.
    const before = Number(readCheckpoint(checkpoints.get(k)!).metadata.wallMs);
    expect(before).toBeGreaterThan(0);
    expect(resumed.totalWallMs - resumed.wallMs).toBeCloseTo(before, 6);
    expect(full.totalWallMs).toBe(full.wallMs);
    const last = readCheckpoint(checkpoints.get(steps)!);
    expect(last.step).toBe(steps);
    expect(last.config).toEqual(config);
    expect(weightsDigest(last.weights)).toBe(weightsDigest(full.weights));
  });

  it('stops at the next step when cancelled; resuming from the last checkpoint completes the run exactly', async () => {
    await initBackend({ force: 'wasm' });
    const opts = options({ recipe: recipe({ steps: 20 }) });
    let calls = 0;
    const { result: stopped, checkpoints } = await trainCollecting({ ...opts, shouldStop: () => ++calls > 7 }, 5);
    expect(stopped).toMatchObject({ stopped: true, steps: 7 });
    expect([...checkpoints.keys()]).toEqual([5]);
    const finished = await trainModel({ ...opts, resume: checkpoints.get(5)! });
    const uninterrupted = await trainModel(opts);
    expect(finished.stopped).toBe(false);
    expect(weightsDigest(finished.weights)).toBe(weightsDigest(uninterrupted.weights));
  });

  it('rejects a checkpoint from a different job, naming what differs', async () => {
    await initBackend({ force: 'wasm' });
    const opts = options({ recipe: recipe({ steps: 4 }) });
    const { checkpoints } = await trainCollecting(opts, 2);
    const resume = checkpoints.get(2)!;
    await expect(trainModel({ ...opts, recipe: recipe({ steps: 4, learningRate: 0.02 }), resume })).rejects.toThrow(/different training job: recipe differs/);
    await expect(trainModel({ ...opts, sources: [{ name: 'drop', weight: 1, docs: ['other'] }], resume })).rejects.toThrow(CheckpointMismatchError);
    await expect(trainModel({ ...opts, init: initWeights(config, 99), resume })).rejects.toThrow(/initial weights/);
    await expect(trainModel({ ...opts, resume: new Uint8Array(16) })).rejects.toThrow(/safetensors/);
  });

  it('does not leak tensors over 100 steps', async () => {
    await initBackend({ force: 'wasm' });
    const before = tf.memory().numTensors;
    const during: number[] = [];
    await trainModel(
      options({
        recipe: recipe({ steps: 100 }),
        lossEvery: 10,
        onProgress: () => {
          during.push(tf.memory().numTensors);
        },
      }),
    );
    expect(during).toHaveLength(10);
    expect(new Set(during).size).toBe(1); // flat while training (the model's variables only)
    expect(tf.memory().numTensors).toBe(before);
  });

  it('pulls toward the reference weights in proportion to l2Pull', async () => {
    await initBackend({ force: 'wasm' });
    const reference = initWeights(config, 1);
    const distance = (w: Map<string, { data: Float32Array }>) => {
      let s = 0;
      for (const [name, t] of w) {
        const r = reference.get(name)!.data;
        t.data.forEach((x, i) => (s += (x - r[i]!) ** 2));
      }
      return Math.sqrt(s);
    };
    const free = await trainModel(options({ reference, recipe: recipe({ l2Pull: 0 }) }));
    const pulled = await trainModel(options({ reference, recipe: recipe({ l2Pull: 50 }) }));
    expect(distance(pulled.weights)).toBeLessThan(0.5 * distance(free.weights));
  });

  it('validates the recipe', async () => {
    await expect(trainModel(options({ recipe: recipe({ steps: 0 }) }))).rejects.toThrow(/steps must be a positive integer/);
    await expect(trainModel(options({ sources: [{ name: 'x', weight: 0, docs: CORPUS }] }))).rejects.toThrow(/no training data/);
  });
});

describe('learning-rate schedule', () => {
  const r = recipe({ steps: 100, warmupSteps: 10, learningRate: 1e-3, minLearningRate: 1e-4 });
  it('warms up linearly from 0, then decays by cosine to the floor', () => {
    expect(learningRateAt(1, r)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(10, r)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(55, r)).toBeCloseTo(5.5e-4, 12);
    expect(learningRateAt(100, r)).toBeCloseTo(1e-4, 12);
  });
  it('re-warms from the floor when continuing from an earlier version', () => {
    const rw = { ...r, rewarm: true };
    expect(learningRateAt(1, rw)).toBeCloseTo(1e-4 + 9e-5, 12);
    expect(learningRateAt(10, rw)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(0, rw)).toBeCloseTo(1e-4, 12);
  });
});

describe('batch sampler', () => {
  const sources = [
    { name: 'drop', weight: 3, docs: ['aaaa', 'bbbb'] },
    { name: 'replay', weight: 1, docs: ['c'.repeat(100)] },
    { name: 'muted', weight: 0, docs: ['zzzz'] },
  ];
  it('is a pure function of (seed, step)', () => {
    const a = new BatchSampler(sources, 8, 5).batch(17, 6);
    const b = new BatchSampler(sources, 8, 5).batch(17, 6);
    expect(a).toEqual(b);
    expect(new BatchSampler(sources, 8, 5).batch(18, 6)).not.toEqual(a);
  });

  it('mixes sources by weight, starts windows at document boundaries, pads and shifts targets', () => {
    const sampler = new BatchSampler(sources, 8, 5);
    const counts = { drop: 0, replay: 0, muted: 0 };
    for (let step = 1; step <= 200; step++) {
      const { ids, targets } = sampler.batch(step, 4);
      for (let row = 0; row < 4; row++) {
        const first = ids[row * 8]!;
        const text = String.fromCharCode(ids[row * 8 + 1]!);
        if (first === BOS && text !== 'c') counts.drop++;
        else if (text === 'z' || first === 'z'.charCodeAt(0)) counts.muted++;
        else counts.replay++;
        for (let j = 0; j < 7; j++) expect(targets[row * 8 + j]).toBe(ids[row * 8 + j + 1]);
      }
    }
    expect(counts.muted).toBe(0);
    expect(counts.drop / (counts.drop + counts.replay)).toBeGreaterThan(0.65);
    expect(counts.drop / (counts.drop + counts.replay)).toBeLessThan(0.85);
    // The replay document has 102 tokens: windows start every 8 tokens; the last one runs into padding.
    expect(sampler.windowCounts()).toEqual({ drop: 2, replay: 13 });
    const tail = new BatchSampler([{ name: 'x', weight: 1, docs: ['hi'] }], 8, 1).batch(1, 1);
    expect(Array.from(tail.ids)).toEqual([BOS, 104, 105, 257, PAD, PAD, PAD, PAD]);
    expect(Array.from(tail.targets)).toEqual([104, 105, 257, PAD, PAD, PAD, PAD, PAD]);
  });
});
