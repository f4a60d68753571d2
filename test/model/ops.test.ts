import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { causalAttention, crossEntropy, embed, gelu, layerNorm, linear, matMul, tiedHead } from '../../model/ops.ts';
import { Rng } from '../../model/random.ts';
import { registerWasmBatchMatMul, wasmBatchMatMul } from '../../model/wasm-gemm.ts';

function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

type Inputs = { data: Float32Array; shape: number[] }[];

/** Value and gradients (w.r.t. every input, for a random output weighting) of f on one backend. */
async function valueAndGrads(backend: string, inputs: Inputs, f: (...xs: tf.Tensor[]) => tf.Tensor): Promise<Float32Array[]> {
  await initBackend({ force: backend });
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const y = f(...xs);
    const dy = tf.tensor(randn(y.size, 99), y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => f(...a))(xs, dy);
    return [y, ...grads];
  });
  const arrays = out.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(out);
  expect(tf.memory().numTensors).toBe(before);
  return arrays;
}

function expectClose(actual: Float32Array[], expected: Float32Array[], tolerance = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, k) => {
    const e = expected[k]!;
    expect(a.length).toBe(e.length);
    let scale = 1e-6;
    for (const v of e) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!));
    expect(worst / scale, `output ${k}: max error ${worst} vs scale ${scale}`).toBeLessThan(tolerance);
  });
}

/** Checks a custom op against a plain tfjs reference (autodiff on cpu), on cpu and on wasm. */
async function checkOp(inputs: Inputs, custom: (...xs: tf.Tensor[]) => tf.Tensor, reference: (...xs: tf.Tensor[]) => tf.Tensor) {
  const expected = await valueAndGrads('cpu', inputs, reference);
  for (const backend of ['cpu', 'wasm']) expectClose(await valueAndGrads(backend, inputs, custom), expected);
}

const LN_EPS = 1e-5;

describe('custom ops match plain tfjs values and gradients (cpu and wasm)', () => {
  it('matMul, linear and the tied head', async () => {
    const a = { data: randn(6 * 5, 1), shape: [6, 5] };
    const b = { data: randn(5 * 7, 2), shape: [5, 7] };
    const bias = { data: randn(7, 3), shape: [7] };
    await checkOp(
      [a, b],
      (x, y) => matMul(x as tf.Tensor2D, y as tf.Tensor2D),
      (x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D),
    );
    await checkOp(
      [a, b, bias],
      (x, w, c) => linear(x as tf.Tensor2D, w as tf.Tensor2D, c as tf.Tensor1D),
      (x, w, c) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), c),
    );
    const table = { data: randn(9 * 5, 4), shape: [9, 5] };
    await checkOp(
      [a, table],
      (h, e) => tiedHead(h as tf.Tensor2D, e as tf.Tensor2D),
      (h, e) => tf.matMul(h as tf.Tensor2D, e as tf.Tensor2D, false, true),
    );
  });

  it('embedding lookup', async () => {
    const ids = Int32Array.from([3, 0, 3, 8, 1, 3]);
    const table = { data: randn(9 * 4, 5), shape: [9, 4] };
    await checkOp(
      [table],
      (t) => embed(t as tf.Tensor2D, ids),
      (t) => tf.gather(t, tf.tensor1d(ids, 'int32')),
    );
    await initBackend({ force: 'cpu' });
    expect(() => tf.tidy(() => embed(tf.zeros([9, 4]), Int32Array.from([9])))).toThrow(/outside the vocabulary/);
  });

  it('layer norm', async () => {
    const x = { data: randn(7 * 6, 6, 3), shape: [7, 6] };
    const g = { data: randn(6, 7), shape: [6] };
    const b = { data: randn(6, 8), shape: [6] };
    await checkOp(
      [x, g, b],
      (xs, gs, bs) => layerNorm(xs as tf.Tensor2D, gs as tf.Tensor1D, bs as tf.Tensor1D),
      (xs, gs, bs) => {
        const { mean, variance } = tf.moments(xs, 1, true);
        return tf.add(tf.mul(tf.div(tf.sub(xs, mean), tf.sqrt(tf.add(variance, LN_EPS))), gs), bs);
      },
    );
  });

  it('GELU (tanh form)', async () => {
    const x = { data: randn(40, 9, 3), shape: [8, 5] };
    const c = Math.sqrt(2 / Math.PI);
    await checkOp(
      [x],
      (xs) => gelu(xs as tf.Tensor2D),
      (xs) => tf.mul(tf.mul(xs, 0.5), tf.add(1, tf.tanh(tf.mul(c, tf.add(xs, tf.mul(0.044715, tf.pow(xs, 3))))))),
    );
  });

  it('causal multi-head attention', async () => {
    const [batch, time, heads, hd] = [2, 5, 3, 4];
    const d = heads * hd;
    const qkv = { data: randn(batch * time * 3 * d, 10), shape: [batch * time, 3 * d] };
    const mask = tf.tidy(() => tf.keep(tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([time, time]), -1, 0)), -1e9)));
    const maskData = mask.dataSync().slice();
    mask.dispose();
    await checkOp(
      [qkv],
      (x) => causalAttention(x as tf.Tensor2D, batch, time, heads),
      (x) => {
        const split = (i: number) => tf.transpose(tf.reshape(tf.slice(x, [0, i * d], [batch * time, d]), [batch, time, heads, hd]), [0, 2, 1, 3]);
        const [q, k, v] = [split(0), split(1), split(2)];
        const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(hd)), tf.tensor2d(maskData, [time, time]));
        const out = tf.matMul(tf.softmax(scores), v);
        return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * time, d]);
      },
    );
  });

  it('cross-entropy with padding weights', async () => {
    const logits = { data: randn(6 * 11, 11, 2), shape: [6, 11] };
    const targets = Int32Array.from([1, 10, 0, 4, 4, 7]);
    const weights = Float32Array.from([1, 1, 0, 1, 0, 1]);
    await checkOp(
      [logits],
      (l) => crossEntropy(l as tf.Tensor2D, targets, weights, 4),
      (l) => {
        const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), 11), 'float32');
        const perRow = tf.neg(tf.sum(tf.mul(tf.logSoftmax(l), onehot), 1));
        return tf.div(tf.sum(tf.mul(perRow, tf.tensor1d(weights))), 4);
      },
    );
  });
});

describe('wasm SIMD batched matmul', () => {
  it.each([
    [4, 8, 16, 8],
    [3, 5, 7, 3],
    [2, 64, 16, 64],
    [1, 6, 1, 130],
    [5, 1, 9, 1],
  ])('batch %i, m %i, k %i, n %i equals tf.matMul (plain and transposed A)', async (batch, m, k, n) => {
    await initBackend({ force: 'wasm' });
    expect(registerWasmBatchMatMul()).toBe(true);
    const a = tf.tensor3d(randn(batch * m * k, 1), [batch, m, k]);
    const aT = tf.transpose(a, [0, 2, 1]) as tf.Tensor3D;
    const b = tf.tensor3d(randn(batch * k * n, 2), [batch, k, n]);
    const expected = tf.matMul(a, b).dataSync();
    for (const got of [wasmBatchMatMul(a, b, false), wasmBatchMatMul(aT, b, true)]) {
      expect(got.shape).toEqual([batch, m, n]);
      expectClose([Float32Array.from(got.dataSync())], [Float32Array.from(expected)], 1e-5);
      got.dispose();
    }
    tf.dispose([a, aT, b]);
  });
});
