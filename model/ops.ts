/**
 * Differentiable building blocks with hand-written gradients, shaped by the wasm backend: there only
 * plain 2-D matmuls without transpose flags reach XNNPACK (tfjs's own matmul gradient uses the flags
 * and falls onto a naive loop), batched matmuls go to our SIMD kernel (wasm-gemm.ts), `tf.gather` has
 * no gradient kernel (UnsortedSegmentSum is missing), reductions over the leading axis transpose
 * first, `tanh`, `exp` and `logSoftmax` are slow while `sigmoid` and `softmax` are fast, and every op
 * is a dispatch, so one tape entry per block beats autodiff's dozen. Values are the textbook ones.
 * (Fusing blocks into plain JS loops was measured too: 1.2-1.7x slower per op than these tensor ops.)
 */
import * as tf from '@tensorflow/tfjs';
import { wasmBatchMatMul, wasmBatchMatMulAvailable } from './wasm-gemm.ts';

/** What a custom op's forward returns: its value, tensors the backward needs, and the backward. */
export interface OpResult<A extends tf.Tensor[], R extends tf.Tensor> {
  value: R;
  /** Forward intermediates (or closed-over tensors) the backward reads; the inputs are kept anyway. */
  keep?: tf.Tensor[];
  gradFunc: (dy: tf.Tensor, inputs: A, kept: tf.Tensor[]) => tf.Tensor[];
}

/**
 * Typed wrapper over tf.customGrad. tfjs disposes every tensor of the forward pass, inputs included,
 * unless it is passed to `save`; reading a disposed tensor in the backward fails, so this saves the
 * inputs and `keep` and hands them back to the backward. (Plain JS arrays can simply be closed over.)
 */
export function customOp<A extends [tf.Tensor, ...tf.Tensor[]], R extends tf.Tensor>(f: (...inputs: A) => OpResult<A, R>): (...inputs: A) => R {
  const op = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inputs = args.slice(0, -1) as A;
    const { value, keep = [], gradFunc } = f(...inputs);
    save([...inputs, ...keep]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => gradFunc(dy, saved.slice(0, inputs.length) as A, saved.slice(inputs.length)),
    };
  }) as Parameters<typeof tf.customGrad<R>>[0]);
  return (...inputs: A) => op(...inputs);
}

/**
 * Whether the current backend is native TensorFlow, where every kernel exists and host round trips are
 * the cost: lookups, one-hot targets and the optimiser then stay on the device. wasm and the JS cpu
 * backend keep the JS paths (wasm lacks the gather gradient; on cpu the host is the device anyway).
 */
export function onDevice(): boolean {
  return tf.getBackend() === 'tensorflow';
}

function t2(x: tf.Tensor2D): tf.Tensor2D {
  return tf.transpose(x, [1, 0]);
}

/** a^T @ b, transposing whichever side moves fewer values (a, or b and the result). */
function matMulTN(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const outSize = a.shape[1] * b.shape[1];
  if (a.size <= b.size + outSize) return tf.matMul(t2(a), b);
  return t2(tf.matMul(t2(b), a));
}

/** a @ b^T, transposing whichever side moves fewer values (b, or a and the result). */
function matMulNT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const outSize = a.shape[0] * b.shape[0];
  if (b.size <= a.size + outSize) return tf.matMul(a, t2(b));
  return t2(tf.matMul(b, t2(a)));
}

/** Column sums of a 2-D tensor as a matmul with ones: tfjs-wasm reduces axis 0 by transposing first. */
function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

/** `a @ b` for 2-D tensors with a fast-path backward. */
export const matMul = customOp<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>((a, b) => ({
  value: tf.matMul(a, b),
  gradFunc: (dy, [a, b]) => [matMulNT(dy as tf.Tensor2D, b), matMulTN(a, dy as tf.Tensor2D)],
}));

/** `x @ w + b` for 2-D x: one tape entry instead of three. */
export const linear = customOp<[tf.Tensor2D, tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>((x, w, b) => ({
  value: tf.add(tf.matMul(x, w), b),
  gradFunc: (dy, [x, w]) => {
    const g = dy as tf.Tensor2D;
    return [matMulNT(g, w), matMulTN(x, g), sumRows(g)];
  },
}));

/** Output head tied to the embedding: `h @ table^T` ([rows, d] x [vocab, d] -> [rows, vocab]). */
export const tiedHead = customOp<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>((h, table) => ({
  value: tf.matMul(h, t2(table)),
  gradFunc: (dy, [h, table]) => {
    const g = dy as tf.Tensor2D;
    return [tf.matMul(g, table), matMulTN(g, h)];
  },
}));

/**
 * Embedding lookup `table[ids]` as a differentiable op of `table`. Both directions are row copies in
 * JS: tfjs-wasm's gather takes ~7 ms for 1024 rows (a generic strided loop) and its gradient,
 * UnsortedSegmentSum, is not implemented; the one-hot matmul that replaces it costs ~12 ms.
 * The scatter-add runs in a fixed order with float64 sums, so it is deterministic.
 */
export function embed(table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D {
  const [vocab, width] = table.shape;
  if (onDevice()) {
    // Native TensorFlow has gather and UnsortedSegmentSum: the lookup and its gradient stay on the device
    // (on CPU the segment sum is a sequential loop, so it is deterministic too).
    for (const id of ids) if (!(id >= 0 && id < vocab)) throw new Error(`token id ${id} is outside the vocabulary (${vocab})`);
    const idx = tf.tensor1d(ids, 'int32');
    return customOp<[tf.Tensor2D], tf.Tensor2D>((tbl) => ({
      value: tf.gather(tbl, idx),
      keep: [idx],
      gradFunc: (dy, _inputs, [i]) => [tf.unsortedSegmentSum(dy, i! as tf.Tensor1D, vocab) as tf.Tensor2D],
    }))(table);
  }
  return customOp<[tf.Tensor2D], tf.Tensor2D>((tbl) => {
    const values = tbl.dataSync() as Float32Array;
    const out = new Float32Array(ids.length * width);
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r]!;
      if (!(id >= 0 && id < vocab)) throw new Error(`token id ${id} is outside the vocabulary (${vocab})`);
      out.set(values.subarray(id * width, (id + 1) * width), r * width);
    }
    return {
      value: tf.tensor2d(out, [ids.length, width]),
      gradFunc: (dy) => {
        const g = dy.dataSync() as Float32Array;
        const acc = new Float64Array(vocab * width);
        for (let r = 0; r < ids.length; r++) {
          const o = ids[r]! * width;
          const src = r * width;
          for (let c = 0; c < width; c++) acc[o + c] = acc[o + c]! + g[src + c]!;
        }
        return [tf.tensor2d(Float32Array.from(acc), [vocab, width])];
      },
    };
  })(table);
}

const LN_EPS = 1e-5;

/** Layer normalisation over the last axis of a 2-D tensor, with gain and bias. */
export const layerNorm = customOp<[tf.Tensor2D, tf.Tensor1D, tf.Tensor1D], tf.Tensor2D>((x, gain, bias) => {
  const mean = tf.mean(x, 1, true);
  const centred = tf.sub(x, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), 1, true), LN_EPS));
  const xhat = tf.mul(centred, rstd);
  return {
    value: tf.add(tf.mul(xhat, gain), bias),
    keep: [xhat, rstd],
    gradFunc: (dy, [, g], [xh, rs]) => {
      const dxhat = tf.mul(dy, g);
      // dx = rstd · (dxhat - mean(dxhat) - xhat · mean(dxhat · xhat))
      const dx = tf.mul(rs!, tf.sub(tf.sub(dxhat, tf.mean(dxhat, 1, true)), tf.mul(xh!, tf.mean(tf.mul(dxhat, xh!), 1, true))));
      return [dx, sumRows(tf.mul(dy, xh!) as tf.Tensor2D), sumRows(dy as tf.Tensor2D)];
    },
  };
});

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * GELU, tanh approximation (GPT-2): x·0.5·(1 + tanh(u)), computed as x·sigmoid(2u), which is the
 * same function: tfjs-wasm's sigmoid is about 7x faster than its tanh.
 */
export const gelu = customOp<[tf.Tensor2D], tf.Tensor2D>((x) => {
  const sig = tf.sigmoid(tf.mul(x, tf.add(tf.mul(tf.square(x), 2 * GELU_C * GELU_A), 2 * GELU_C)));
  return {
    value: tf.mul(x, sig),
    keep: [sig],
    gradFunc: (dy, [xs], [s]) => {
      // d/dx x·σ(z) = σ + x·σ(1-σ)·z',  z' = 2c(1 + 3a·x²)
      const dz = tf.add(tf.mul(tf.square(xs), 6 * GELU_C * GELU_A), 2 * GELU_C);
      const grad = tf.add(s!, tf.mul(tf.mul(xs, tf.mul(s!, tf.sub(1, s!))), dz));
      return [tf.mul(dy, grad)];
    },
  };
});

/** Batched op(a)·op(b): the SIMD kernel on wasm (B transposed explicitly: cheap at these sizes), tf.matMul elsewhere. */
function bmm(a: tf.Tensor3D, b: tf.Tensor3D, transposeA = false, transposeB = false): tf.Tensor3D {
  if (wasmBatchMatMulAvailable()) {
    return wasmBatchMatMul(a, transposeB ? tf.transpose(b, [0, 2, 1]) : b, transposeA);
  }
  return tf.matMul(a, b, transposeA, transposeB);
}

/** Batched `a @ b` for rank-3 tensors. */
const batchMatMul = customOp<[tf.Tensor3D, tf.Tensor3D], tf.Tensor3D>((a, b) => ({
  value: bmm(a, b),
  gradFunc: (dy, [a, b]) => [bmm(dy as tf.Tensor3D, b, false, true), bmm(a, dy as tf.Tensor3D, true, false)],
}));

const causalMasks = new Map<number, Float32Array>();
/** Additive causal mask [time, time]: built in JS (a mask derived from a differentiated tensor fails on wasm). */
function causalMask(time: number): tf.Tensor2D {
  let mask = causalMasks.get(time);
  if (!mask) {
    mask = new Float32Array(time * time);
    for (let i = 0; i < time; i++) for (let j = i + 1; j < time; j++) mask[i * time + j] = -1e9;
    causalMasks.set(time, mask);
  }
  return tf.tensor2d(mask, [time, time]);
}

/**
 * Causal multi-head self-attention from the fused projection `qkv` [batch·time, 3·d] (q, k, v side
 * by side, heads contiguous within each) to [batch·time, d] with heads concatenated.
 */
export function causalAttention(qkv: tf.Tensor2D, batch: number, time: number, heads: number): tf.Tensor2D {
  const d = qkv.shape[1] / 3;
  const hd = d / heads;
  const n = heads * batch;
  // [batch, time, 3·heads, hd] -> [3·heads, batch, time, hd]: q, k and v become contiguous slabs, so
  // the split is three block copies (splitting along an inner axis is a slow strided copy on wasm).
  // Attention runs over n = heads·batch independent (head, sequence) pairs.
  const slabs = tf.transpose(tf.reshape(qkv, [batch, time, 3 * heads, hd]), [2, 0, 1, 3]);
  const [q, k, v] = tf.split(slabs, 3, 0) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  // Scale q (time·hd values per pair) rather than the scores (time·time).
  const q3 = tf.reshape(tf.mul(q, 1 / Math.sqrt(hd)), [n, time, hd]) as tf.Tensor3D;
  const kT = tf.transpose(tf.reshape(k, [n, time, hd]), [0, 2, 1]) as tf.Tensor3D;
  const probs = tf.softmax(tf.add(batchMatMul(q3, kT), causalMask(time))) as tf.Tensor3D;
  const out = batchMatMul(probs, tf.reshape(v, [n, time, hd]) as tf.Tensor3D);
  // [heads, batch, time, hd] -> [batch, time, heads, hd] = [batch·time, d] with heads concatenated.
  return tf.reshape(tf.transpose(tf.reshape(out, [heads, batch, time, hd]), [1, 2, 0, 3]), [batch * time, d]);
}

/**
 * Cross-entropy of `logits` [rows, vocab] against `targets`, weighting each row by `weights` (0 for
 * padding) and dividing by `count`. The gradient (softmax - onehot)·w/count is written out either way.
 *
 * The loss is log-sum-exp minus the target logit, never the log of a probability: a target probability
 * can underflow float32 (a logit 100 below the row's maximum gives e^-100, a denormal), and TensorFlow's
 * CPU kernels and most GPU kernels flush denormals to zero, so log(p) would be -Infinity there however p
 * is clamped (any clamp below 1.18e-38 is itself flushed; one above caps the loss). The log-sum-exp comes
 * from the softmax, one fast kernel on wasm (exp and logSoftmax are slow there): with m the row maximum,
 * softmax at the arg-max is 1/Σexp(x - m), at least 1/vocab, so log Σexp(x) = m - log(max softmax)
 * is exact and finite on every backend.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array, weights: Float32Array, count: number): tf.Scalar {
  const vocab = logits.shape[1];
  let onehot: tf.Tensor2D;
  if (onDevice()) {
    // Built on the device from the int32 targets: uploading rows·vocab floats per step is what costs there.
    onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), vocab), 'float32') as tf.Tensor2D;
  } else {
    // Built in JS: tfjs-wasm's OneHot ignores dtype 'float32' and writes integer bits (1 -> 1.4e-45).
    const hot = new Float32Array(targets.length * vocab);
    for (let r = 0; r < targets.length; r++) hot[r * vocab + targets[r]!] = 1;
    onehot = tf.tensor2d(hot, [targets.length, vocab]);
  }
  const w = tf.tensor1d(weights);
  return customOp<[tf.Tensor2D], tf.Scalar>((lg) => {
    const probs = tf.softmax(lg);
    // Per row: m - target logit (>= 0, exact in float32) plus -log(max softmax) (in [0, log vocab]).
    const margin = tf.sub(tf.max(lg, 1), tf.sum(tf.mul(lg, onehot), 1));
    const perRow = tf.sub(margin, tf.log(tf.max(probs, 1)));
    return {
      value: tf.div(tf.sum(tf.mul(perRow, w)), count),
      keep: [probs, onehot, w],
      gradFunc: (dy, _inputs, [p, oh, wk]) => [tf.mul(tf.sub(p!, oh!), tf.reshape(tf.mul(wk!, tf.div(dy, count)), [-1, 1]))],
    };
  })(logits);
}

/**
 * Distillation loss: T² · mean over weighted rows of KL(teacher ‖ softmax(student / T)), where
 * `teacherProbs` is softmax(teacher logits / T) over the same vocabulary (so the teacher may have any
 * width or depth). The T² keeps the gradient's scale independent of T (Hinton et al. 2015). The value
 * includes the teacher's entropy term, so it is a true KL (0 when the student matches the teacher).
 */
export function distillKL(logits: tf.Tensor2D, teacherProbs: tf.Tensor2D, temperature: number, weights: Float32Array, count: number): tf.Scalar {
  const w = tf.tensor1d(weights);
  const t = temperature;
  return customOp<[tf.Tensor2D], tf.Scalar>((lg) => {
    const q = tf.softmax(tf.div(lg, t));
    // log(softmax) with a floor rather than logSoftmax (slow on wasm); the floor only touches terms whose p is ~0 too.
    const floor = 1e-30;
    const perRow = tf.sum(tf.mul(teacherProbs, tf.sub(tf.log(tf.maximum(teacherProbs, floor)), tf.log(tf.maximum(q, floor)))), 1);
    return {
      value: tf.mul(tf.div(tf.sum(tf.mul(perRow, w)), count), t * t),
      keep: [q, teacherProbs, w],
      // d/ds of T²·KL(p ‖ softmax(s/T)) = T·(q − p), per row weighted by w / count.
      gradFunc: (dy, _inputs, [qk, pk, wk]) => [tf.mul(tf.sub(qk!, pk!), tf.reshape(tf.mul(wk!, tf.div(tf.mul(dy, t), count)), [-1, 1]))],
    };
  })(logits);
}
