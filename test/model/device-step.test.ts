/**
 * The on-device training step (DeviceAdamW, on-device embedding gradient and targets) against the host
 * step (JS AdamW), and native TensorFlow against wasm: same results to float32 rounding, exact resume,
 * no leaked tensors.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend, nativeBuild } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { type TrainOptions, type TrainResult, trainModel } from '../../model/train.ts';
import { initWeights } from '../../model/transformer.ts';
import { weightsDigest } from '../../model/weights.ts';
import { CORPUS, TEST_BACKENDS, recipe } from './fixtures.ts';

const config = preset('tiny');

/** A job that exercises every part of the update: warmup and decay, clipping (gradClip 0.5), decay, L2 pull. */
function job(overrides: Partial<TrainOptions> = {}): TrainOptions {
  return {
    config,
    init: initWeights(config, 1),
    reference: initWeights(config, 2),
    sources: [{ name: 'drop', weight: 1, docs: CORPUS }],
    recipe: recipe({ steps: 8, batchSize: 2, warmupSteps: 2, gradClip: 0.5, weightDecay: 0.1, l2Pull: 0.1 }),
    lossEvery: 1,
    ...overrides,
  };
}

/** Largest |a - b| over all weights, relative to the largest |b|. */
function weightDistance(a: TrainResult, b: TrainResult): number {
  let worst = 0;
  let scale = 1e-6;
  for (const [name, wb] of b.weights) {
    const wa = a.weights.get(name)!.data;
    for (let i = 0; i < wb.data.length; i++) {
      worst = Math.max(worst, Math.abs(wa[i]! - wb.data[i]!));
      scale = Math.max(scale, Math.abs(wb.data[i]!));
    }
  }
  return worst / scale;
}

function expectCurvesClose(a: number[], b: number[], tolerance: number): void {
  expect(a).toHaveLength(b.length);
  a.forEach((x, i) => expect(Math.abs(x - b[i]!) / Math.abs(b[i]!), `loss at step ${i + 1}: ${x} vs ${b[i]}`).toBeLessThan(tolerance));
}

describe('on-device training step', () => {
  it('gives the host step results to float32 rounding (cpu: loss curve within 1e-5, weights within 1e-5)', async () => {
    await initBackend({ force: 'cpu' });
    const host = await trainModel(job({ deviceStep: false }));
    const device = await trainModel(job({ deviceStep: true }));
    expectCurvesClose(device.lossCurve, host.lossCurve, 1e-5);
    expect(weightDistance(device, host)).toBeLessThan(1e-5);
    expect(weightsDigest(device.weights)).not.toBe(weightsDigest(initWeights(config, 1)));
  });

  it.each(TEST_BACKENDS)('on %s, resumes bit-identically from a checkpoint and leaks no tensors', async (backend) => {
    await initBackend({ force: backend });
    const checkpoints = new Map<number, Uint8Array>();
    const before = tf.memory().numTensors;
    const full = await trainModel({
      ...job({ deviceStep: true }),
      checkpointEvery: 3,
      onCheckpoint: async (bytes, step) => {
        checkpoints.set(step, bytes);
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    const again = await trainModel(job({ deviceStep: true }));
    expect(weightsDigest(again.weights)).toBe(weightsDigest(full.weights));
    const resumed = await trainModel({ ...job({ deviceStep: true }), resume: checkpoints.get(3)! });
    expect(weightsDigest(resumed.weights)).toBe(weightsDigest(full.weights));
    expect(resumed.lossCurve).toEqual(full.lossCurve);
    expect(tf.memory().numTensors).toBe(before);
  });

  // The kernels round differently (matmul blocking, oneDNN), and Adam divides by sqrt(v): an element whose
  // gradient is ~0 can move by up to lr in either direction. Hence 1e-2 on weights, 1e-3 on the loss.
  it.runIf(TEST_BACKENDS.includes('node'))(
    'native TensorFlow (device step) matches wasm (host step) over 8 steps: loss within 1e-3, weights within 1e-2',
    async () => {
      await initBackend({ force: 'wasm' });
      const wasm = await trainModel(job());
      await initBackend({ force: 'node' });
      const native = await trainModel(job());
      expect(native.backend).toMatch(/^tensorflow-cpu/);
      expectCurvesClose(native.lossCurve, wasm.lossCurve, 1e-3);
      expect(weightDistance(native, wasm)).toBeLessThan(1e-2);
    },
  );

  // Runs only where `PERENNIAL_NATIVE_TF=gpu npm install` built tfjs-node-gpu and nvidia-smi sees a GPU;
  // elsewhere vitest reports it as skipped (not run).
  const gpuVisible = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).status === 0;
  it.runIf(nativeBuild('gpu') !== undefined && gpuVisible)('on the GPU build, trains on the GPU and matches wasm (loss within 1e-3)', async () => {
    await initBackend({ force: 'wasm' });
    const wasm = await trainModel(job());
    await initBackend({ force: 'gpu' });
    const gpu = await trainModel(job());
    expect(gpu.backend).toMatch(/^tensorflow-gpu \S+ on (?!CPU)/);
    expectCurvesClose(gpu.lossCurve, wasm.lossCurve, 1e-3);
  });
});
