/**
 * The loss must stay exact and finite when a target's probability underflows float32. TensorFlow's CPU
 * kernels (and most GPU kernels) flush denormals to zero, WebAssembly and the JS cpu backend keep them,
 * so a clamp like max(p, 1e-38) (a denormal) holds on some backends and yields log(0) = -Infinity on
 * others. These tests run on every available backend, the native one included when it is built.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { crossEntropy } from '../../model/ops.ts';
import { trainModel } from '../../model/train.ts';
import { initWeights } from '../../model/transformer.ts';
import { CORPUS, TEST_BACKENDS, recipe } from './fixtures.ts';

/** Float64 reference: loss = sum_r w_r (logsumexp(row r) - row r[target]) / count, and its gradient. */
function reference(logits: Float32Array, vocab: number, targets: Int32Array, weights: Float32Array, count: number) {
  let loss = 0;
  const grad = new Float64Array(logits.length);
  for (let r = 0; r < targets.length; r++) {
    const row = Array.from(logits.subarray(r * vocab, (r + 1) * vocab));
    const max = Math.max(...row);
    const sum = row.reduce((s, x) => s + Math.exp(x - max), 0);
    loss += (weights[r]! * (max + Math.log(sum) - row[targets[r]!]!)) / count;
    row.forEach((x, c) => (grad[r * vocab + c] = ((Math.exp(x - max) / sum - (c === targets[r] ? 1 : 0)) * weights[r]!) / count));
  }
  return { loss, grad };
}

describe.each(TEST_BACKENDS)('numerics on %s', (backend) => {
  it('cross-entropy is exact and finite when the target probability is far below float32 normals', async () => {
    await initBackend({ force: backend });
    const vocab = 5;
    // Target logits 60, 100 and 300 below the row maximum: p = e^-60 (8.8e-27, normal), e^-100 (3.7e-44, a
    // denormal) and e^-300 (0 in float32). The exact losses are about 60, 100 and 300.
    const logits = Float32Array.from([0, 60, 1, 2, 3, -50, 50, 0, 1, 2, 0, 0, 300, 0, 0, 4, 3, 2, 1, 0]);
    const targets = Int32Array.from([0, 0, 0, 4]);
    const weights = Float32Array.from([1, 1, 1, 0]);
    const expected = reference(logits, vocab, targets, weights, 3);
    const [value, grad] = tf.tidy(() => {
      const x = tf.tensor2d(logits, [4, vocab]);
      const f = (l: tf.Tensor) => crossEntropy(l as tf.Tensor2D, targets, weights, 3);
      return [f(x), tf.grad(f)(x)];
    });
    const loss = value!.dataSync()[0]!;
    const g = Float32Array.from(grad!.dataSync());
    tf.dispose([value!, grad!]);
    expect(Number.isFinite(loss), `loss ${loss}`).toBe(true);
    expect(Math.abs(loss - expected.loss) / expected.loss, `loss ${loss} vs ${expected.loss}`).toBeLessThan(1e-5);
    for (let i = 0; i < g.length; i++) {
      expect(Number.isFinite(g[i]!), `gradient ${i} is ${g[i]}`).toBe(true);
      expect(Math.abs(g[i]! - expected.grad[i]!), `gradient ${i}`).toBeLessThan(1e-6);
    }
  });

  it('training on logits that push target probabilities below float32 normals keeps loss and weights finite', async () => {
    await initBackend({ force: backend });
    const config = preset('tiny');
    const init = initWeights(config, 1);
    // A final-norm gain of 1000 makes the tied head's logits spread over hundreds: most targets get a
    // probability far below 1.18e-38, and the exact mean loss is well above the ~87 that a clamp at
    // 1e-38 would cap each token at.
    init.get('ln_f.gain')!.data.fill(1000);
    const result = await trainModel({
      config,
      init,
      sources: [{ name: 'drop', weight: 1, docs: CORPUS }],
      recipe: recipe({ steps: 3, batchSize: 2, warmupSteps: 1 }),
      lossEvery: 1,
    });
    expect(result.lossCurve).toHaveLength(3);
    for (const loss of result.lossCurve) expect(Number.isFinite(loss), `loss ${loss}`).toBe(true);
    expect(result.lossCurve[0]!).toBeGreaterThan(100);
    for (const [name, w] of result.weights) {
      expect(
        w.data.every((x) => Number.isFinite(x)),
        `${name} has non-finite values`,
      ).toBe(true);
    }
  });
});
