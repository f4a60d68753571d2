/**
 * The Llama family's building blocks, beside the GPT's in model/ops.ts and shaped by the same backend facts
 * (TFJS-NOTES.md): on wasm only plain 2-D matmuls without transpose flags are fast, batched matmuls go to the SIMD
 * kernel (wasm-gemm.ts), and one tape entry per block beats autodiff's dozen; on native TensorFlow the transpose
 * flags are free, so tfjs's own matmul and its gradient are used there. Values are the textbook ones (Hugging Face's
 * modeling_llama.py); test/model/llama-parity.test.ts checks them against a NumPy implementation.
 */
import * as tf from '@tensorflow/tfjs';
import { customOp, matMul as hostMatMul, onDevice, tiedHead } from '../ops.ts';
import { wasmBatchMatMul, wasmBatchMatMulAvailable } from '../wasm-gemm.ts';

/** Column sums of a 2-D tensor (tfjs-wasm reduces axis 0 by a transpose; a matmul with ones is its fast path). */
function columnSums(x: tf.Tensor2D): tf.Tensor1D {
  if (onDevice()) return tf.sum(x, 0);
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

/** `x @ w` ([rows, in] x [in, out]). */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return onDevice() ? tf.matMul(x, w) : hostMatMul(x, w);
}

/** Output head `h @ table^T` ([rows, d] x [vocab, d] -> [rows, vocab]) for a tied embedding or an untied head. */
export function outputHead(h: tf.Tensor2D, table: tf.Tensor2D): tf.Tensor2D {
  // Native: the transpose flag, not a copy of the vocab x d table per call (113 MB for SmolLM2).
  return onDevice() ? tf.matMul(h, table, false, true) : tiedHead(h, table);
}

/** RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · gain (LlamaRMSNorm). */
export function rmsNorm(x: tf.Tensor2D, gain: tf.Tensor1D, eps: number): tf.Tensor2D {
  return customOp<[tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>((xs, g) => {
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xs), 1, true), eps));
    const xhat = tf.mul(xs, rstd);
    return {
      value: tf.mul(xhat, g),
      keep: [xhat, rstd],
      gradFunc: (dy, [, gk], [xh, rs]) => {
        const dxhat = tf.mul(dy, gk);
        // dx = rstd · (dxhat − xhat · mean(dxhat · xhat))
        const dx = tf.mul(rs!, tf.sub(dxhat, tf.mul(xh!, tf.mean(tf.mul(dxhat, xh!), 1, true))));
        return [dx, columnSums(tf.mul(dy, xh!) as tf.Tensor2D)];
      },
    };
  })(x, gain);
}

/** SwiGLU's gate: silu(gate) · up, silu(g) = g · sigmoid(g) (sigmoid is one fast kernel on wasm). */
export const swiglu = customOp<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>((gate, up) => {
  const s = tf.sigmoid(gate);
  const act = tf.mul(gate, s);
  return {
    value: tf.mul(act, up),
    keep: [s, act],
    gradFunc: (dy, [g, u], [sk, ak]) => {
      // silu'(g) = s · (1 + g · (1 − s))
      const dsilu = tf.mul(sk!, tf.add(1, tf.mul(g, tf.sub(1, sk!))));
      return [tf.mul(tf.mul(dy, u), dsilu), tf.mul(dy, ak!)];
    },
  };
});

const rotaryTables = new Map<string, { positions: number; cos: Float32Array; sin: Float32Array }>();

/**
 * cos and sin of position · base^(−2i/headDim) for positions 0..positions−1 (at least) and i < headDim/2, in
 * float64 then rounded (Hugging Face computes the angles in float32; the difference is below float32 rounding of
 * the logits). Grown by doubling as longer sequences come, so a 128k-context model does not pay for 128k positions.
 */
function rotaryTable(positions: number, headDim: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const key = `${headDim}:${base}`;
  let table = rotaryTables.get(key);
  if (!table || table.positions < positions) {
    const n = Math.max(positions, 2 * (table?.positions ?? 64));
    const half = headDim / 2;
    const cos = new Float32Array(n * half);
    const sin = new Float32Array(n * half);
    for (let i = 0; i < half; i++) {
      const freq = 1 / base ** ((2 * i) / headDim);
      for (let p = 0; p < n; p++) {
        cos[p * half + i] = Math.cos(p * freq);
        sin[p * half + i] = Math.sin(p * freq);
      }
    }
    table = { positions: n, cos, sin };
    rotaryTables.set(key, table);
  }
  return table;
}

/** The rotary angles of `time` consecutive positions from `offset`, as [time, 1, headDim/2] tensors (broadcast over heads). */
export interface Rotary {
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
}

/** Rotary tables for positions offset..offset+time−1. Call inside tf.tidy. */
export function rotaryAt(offset: number, time: number, headDim: number, base: number): Rotary {
  const half = headDim / 2;
  const { cos, sin } = rotaryTable(offset + time, headDim, base);
  const part = (a: Float32Array) => tf.tensor3d(a.subarray(offset * half, (offset + time) * half), [time, 1, half]);
  return { cos: part(cos), sin: part(sin) };
}

/** Rotates each head's halves (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin): Hugging Face's apply_rotary_pos_emb. */
function rotateHalves(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, batch: number, time: number, heads: number, headDim: number): tf.Tensor2D {
  const [x1, x2] = tf.split(tf.reshape(x, [batch, time, heads, headDim]), 2, 3) as [tf.Tensor4D, tf.Tensor4D];
  const o1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
  const o2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
  return tf.reshape(tf.concat([o1, o2], 3), [batch * time, heads * headDim]);
}

/**
 * Rotary position embedding of `x` [batch·time, heads·headDim] (rows b·time + t at position offset + t, the offset
 * being in `rotary`). The rotation is orthogonal, so its gradient is the inverse rotation: the same op with −sin.
 */
export function applyRotary(x: tf.Tensor2D, rotary: Rotary, batch: number, time: number, heads: number, headDim: number): tf.Tensor2D {
  return customOp<[tf.Tensor2D], tf.Tensor2D>((xs) => ({
    value: rotateHalves(xs, rotary.cos, rotary.sin, batch, time, heads, headDim),
    keep: [rotary.cos, rotary.sin],
    gradFunc: (dy, _inputs, [c, s]) => [rotateHalves(dy, c!, tf.neg(s!), batch, time, heads, headDim)],
  }))(x);
}

/** Batched `a @ b` ([n, m, k] x [n, k, p]): the SIMD kernel on wasm, tf.matMul elsewhere; gradients likewise. */
const batchMatMul = customOp<[tf.Tensor3D, tf.Tensor3D], tf.Tensor3D>((a, b) => {
  const bmm = (x: tf.Tensor3D, y: tf.Tensor3D, transposeA: boolean, transposeB: boolean): tf.Tensor3D => {
    if (wasmBatchMatMulAvailable()) return wasmBatchMatMul(x, transposeB ? tf.transpose(y, [0, 2, 1]) : y, transposeA);
    return tf.matMul(x, y, transposeA, transposeB);
  };
  return {
    value: bmm(a, b, false, false),
    gradFunc: (dy, [ak, bk]) => [bmm(dy as tf.Tensor3D, bk, false, true), bmm(ak, dy as tf.Tensor3D, true, false)],
  };
});

const causalMasks = new Map<string, Float32Array>();

/**
 * Additive mask [groups·time, offset+time] for queries at positions offset..offset+time−1 (each of `groups` query
 * heads sharing a key-value head, stacked) over keys 0..offset+time−1: −1e9 where the key is later than the query.
 * Built in JS: a mask derived from a differentiated tensor fails on wasm.
 */
function causalMask(groups: number, time: number, offset: number): tf.Tensor2D {
  const keys = offset + time;
  const id = `${groups}:${time}:${offset}`;
  let mask = causalMasks.get(id);
  if (!mask) {
    mask = new Float32Array(groups * time * keys);
    for (let g = 0; g < groups; g++)
      for (let t = 0; t < time; t++) for (let j = offset + t + 1; j < keys; j++) mask[(g * time + t) * keys + j] = -1e9;
    // Decoding steps make a new (time 1, offset) pair each token, and they need no mask: keep only the few shapes of a run.
    if (causalMasks.size > 64) causalMasks.clear();
    causalMasks.set(id, mask);
  }
  return tf.tensor2d(mask, [groups * time, keys]);
}

/** [batch·time, heads·headDim] -> [batch·heads, time, headDim]: one (sequence, head) pair per slab. */
export function toHeads(x: tf.Tensor2D, batch: number, time: number, heads: number, headDim: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(x, [batch, time, heads, headDim]), [0, 2, 1, 3]), [batch * heads, time, headDim]);
}

/**
 * Causal grouped-query attention. `q` [batch·time, nHeads·headDim] holds the queries of positions
 * offset..offset+time−1; `k`, `v` [batch·nKvHeads, offset+time, headDim] every key and value up to the last of them
 * (a cache's and the new ones). Query head h reads key-value head floor(h / (nHeads/nKvHeads)), as Hugging Face's
 * repeat_kv: the group's query heads are stacked along the time axis, so no key or value is copied. Returns
 * [batch·time, nHeads·headDim], heads concatenated.
 */
export function groupedAttention(
  q: tf.Tensor2D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  dims: { batch: number; time: number; offset: number; heads: number; kvHeads: number; headDim: number },
): tf.Tensor2D {
  const { batch, time, offset, heads, kvHeads, headDim } = dims;
  const groups = heads / kvHeads;
  // [batch, time, heads, hd] -> [batch, heads, time, hd] = [batch·kvHeads, groups·time, hd] (heads of a group adjacent).
  const q3 = tf.reshape(tf.mul(toHeads(q, batch, time, heads, headDim), 1 / Math.sqrt(headDim)), [batch * kvHeads, groups * time, headDim]) as tf.Tensor3D;
  let scores = onDevice() ? tf.matMul(q3, k, false, true) : batchMatMul(q3, tf.transpose(k, [0, 2, 1]));
  // A single new position sees every key: no mask to add.
  if (time > 1) scores = tf.add(scores, causalMask(groups, time, offset));
  const probs = tf.softmax(scores) as tf.Tensor3D;
  const out = onDevice() ? tf.matMul(probs, v) : batchMatMul(probs, v);
  // [batch·kvHeads, groups·time, hd] = [batch, heads, time, hd] -> [batch, time, heads, hd].
  return tf.reshape(tf.transpose(tf.reshape(out, [batch, heads, time, headDim]), [0, 2, 1, 3]), [batch * time, heads * headDim]);
}
