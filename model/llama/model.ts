/**
 * The Llama-family decoder: token embedding, pre-norm blocks of RMSNorm -> grouped-query causal attention with
 * rotary positions -> residual, RMSNorm -> SwiGLU MLP -> residual, a final RMSNorm and a tied or untied output head.
 * Activations stay 2-D ([batch·time, width]) between blocks, as in the GPT, so every weight matmul is a plain 2-D
 * matmul. `forwardStep` runs new positions against a key-value cache for generation.
 */
import * as tf from '@tensorflow/tfjs';
import type { Weights } from '../weights.ts';
import { crossEntropy, embed } from '../ops.ts';
import { type LlamaConfig, llamaWeightShapes, validateLlamaConfig } from './config.ts';
import { applyRotary, dense, groupedAttention, outputHead, rmsNorm, rotaryAt, swiglu, toHeads } from './ops.ts';
import { checkLlamaWeights } from './weights.ts';

interface Block {
  attnNorm: tf.Variable<tf.Rank.R1>;
  q: tf.Variable<tf.Rank.R2>;
  k: tf.Variable<tf.Rank.R2>;
  v: tf.Variable<tf.Rank.R2>;
  o: tf.Variable<tf.Rank.R2>;
  mlpNorm: tf.Variable<tf.Rank.R1>;
  gate: tf.Variable<tf.Rank.R2>;
  up: tf.Variable<tf.Rank.R2>;
  down: tf.Variable<tf.Rank.R2>;
}

/**
 * Keys and values of the positions seen so far, per layer [batch·nKvHeads, length, headDim], keys already rotated.
 * Owned by whoever holds it: forwardStep consumes the cache it is given (disposes its tensors) and returns the next.
 */
export interface LlamaKvCache {
  readonly batch: number;
  /** Positions cached: the next token sits at this position. */
  readonly length: number;
  readonly keys: readonly tf.Tensor3D[];
  readonly values: readonly tf.Tensor3D[];
}

/** Frees a cache's tensors. */
export function disposeKvCache(cache: LlamaKvCache | undefined): void {
  if (cache) tf.dispose([...cache.keys, ...cache.values]);
}

/** A Llama-family model whose weights live in tf.Variables (trainable in place); dispose() frees them. */
export class LlamaModel {
  /** The variables by weight name, in llamaWeightShapes order (the optimiser's order). */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  private readonly tokEmb: tf.Variable<tf.Rank.R2>;
  private readonly blocks: Block[] = [];
  private readonly normF: tf.Variable<tf.Rank.R1>;
  /** The untied head [vocab, dModel], or the embedding when tied. */
  private readonly headTable: tf.Variable<tf.Rank.R2>;
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    variables: Map<string, tf.Variable>,
  ) {
    this.variables = variables;
    const v = <R extends tf.Rank>(name: string) => variables.get(name)! as tf.Variable<R>;
    this.tokEmb = v('tok_emb');
    for (let i = 0; i < config.nLayers; i++) {
      const p = `blocks.${i}.`;
      this.blocks.push({
        attnNorm: v(`${p}attn_norm.gain`),
        q: v(`${p}attn.q.weight`),
        k: v(`${p}attn.k.weight`),
        v: v(`${p}attn.v.weight`),
        o: v(`${p}attn.o.weight`),
        mlpNorm: v(`${p}mlp_norm.gain`),
        gate: v(`${p}mlp.gate.weight`),
        up: v(`${p}mlp.up.weight`),
        down: v(`${p}mlp.down.weight`),
      });
    }
    this.normF = v('norm_f.gain');
    this.headTable = config.tiedEmbeddings ? this.tokEmb : v('head');
  }

  /** Builds a model on the current backend from weights that must match the config exactly. */
  static create(config: LlamaConfig, weights: Weights): LlamaModel {
    const valid = validateLlamaConfig(config);
    checkLlamaWeights(valid, weights);
    const variables = new Map<string, tf.Variable>();
    try {
      for (const name of llamaWeightShapes(valid).keys()) {
        const w = weights.get(name)!;
        // Unnamed: tfjs variable names are global, and two models (candidate, parent) may coexist.
        variables.set(
          name,
          tf.tidy(() => tf.variable(tf.tensor(w.data, w.shape, 'float32'), true)),
        );
      }
    } catch (err) {
      tf.dispose([...variables.values()]);
      throw err;
    }
    return new LlamaModel(valid, variables);
  }

  /** Copies the current weights out of the backend (fresh arrays, safe to keep after dispose). */
  exportWeights(): Weights {
    const out: Weights = new Map();
    for (const [name, v] of this.variables) out.set(name, { shape: [...v.shape], data: new Float32Array(v.dataSync() as Float32Array) });
    return out;
  }

  /** Overwrites every variable with `weights` (same config). */
  loadWeights(weights: Weights): void {
    checkLlamaWeights(this.config, weights);
    for (const [name, v] of this.variables) {
      const w = weights.get(name)!;
      tf.tidy(() => v.assign(tf.tensor(w.data, w.shape, 'float32')));
    }
  }

  /** Frees the variables; the model is unusable afterwards. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.variables.values()) v.dispose();
  }

  /**
   * Final hidden states [batch·time, dModel] of row-major ids [batch, time] at positions offset..offset+time−1,
   * with the new keys and values appended to `cache`'s (positions 0..offset−1). Call inside tf.tidy.
   */
  private forward(ids: Int32Array, batch: number, cache?: LlamaKvCache): { hidden: tf.Tensor2D; keys: tf.Tensor3D[]; values: tf.Tensor3D[] } {
    const { dModel: d, nHeads: h, nKvHeads: kv, headDim: hd, context, rmsEps: eps, ropeBase } = this.config;
    const time = ids.length / batch;
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(time) || time < 1) throw new Error(`${ids.length} ids do not form ${batch} rows`);
    const offset = cache?.length ?? 0;
    if (cache && cache.batch !== batch) throw new Error(`the cache holds ${cache.batch} rows, not ${batch}`);
    if (offset + time > context) throw new Error(`sequence length ${offset + time} exceeds the model context ${context}`);
    const rotary = rotaryAt(offset, time, context, hd, ropeBase);
    let x = embed(this.tokEmb, ids);
    if (x.shape[1] !== d) throw new Error('embedding width mismatch');
    const keys: tf.Tensor3D[] = [];
    const values: tf.Tensor3D[] = [];
    this.blocks.forEach((b, i) => {
      const a = rmsNorm(x, b.attnNorm, eps);
      const q = applyRotary(dense(a, b.q), rotary, batch, time, h, hd);
      let k = toHeads(applyRotary(dense(a, b.k), rotary, batch, time, kv, hd), batch, time, kv, hd);
      let v = toHeads(dense(a, b.v), batch, time, kv, hd);
      if (cache) {
        k = tf.concat([cache.keys[i]!, k], 1);
        v = tf.concat([cache.values[i]!, v], 1);
      }
      keys.push(k);
      values.push(v);
      x = tf.add(x, dense(groupedAttention(q, k, v, { batch, time, offset, heads: h, kvHeads: kv, headDim: hd }), b.o));
      const m = rmsNorm(x, b.mlpNorm, eps);
      x = tf.add(x, dense(swiglu(dense(m, b.gate), dense(m, b.up)), b.down));
    });
    return { hidden: rmsNorm(x, this.normF, eps), keys, values };
  }

  /** Final hidden states [batch·time, dModel] for row-major ids [batch, time] at positions 0..time−1. Call inside tf.tidy. */
  hidden(ids: Int32Array, batch: number): tf.Tensor2D {
    return this.forward(ids, batch).hidden;
  }

  /** Output-head logits [rows, vocab] for hidden states [rows, dModel]. */
  head(hidden: tf.Tensor2D): tf.Tensor2D {
    return outputHead(hidden, this.headTable);
  }

  /** Logits [batch·time, vocab] for row-major ids [batch, time]. Call inside tf.tidy. */
  logits(ids: Int32Array, batch: number): tf.Tensor2D {
    return this.head(this.hidden(ids, batch));
  }

  /**
   * Sum of next-token cross-entropies (log-sum-exp minus the target logit, model/ops.ts crossEntropy) over the
   * targets that are not negative, and how many there are. `targets` [batch, time] row-major; a negative target
   * (Hugging Face's −100) is padding. Call inside tf.tidy.
   */
  lossSum(ids: Int32Array, targets: Int32Array, batch: number): { sum: tf.Scalar; count: number } {
    const { weights, safeTargets, count } = targetWeights(targets, this.config.vocabSize);
    return { sum: crossEntropy(this.logits(ids, batch), safeTargets, weights, 1), count };
  }

  /** Mean next-token cross-entropy over the non-negative targets (padding: negative). Call inside tf.tidy or variableGrads. */
  loss(ids: Int32Array, targets: Int32Array, batch: number): tf.Scalar {
    const { weights, safeTargets, count } = targetWeights(targets, this.config.vocabSize);
    return crossEntropy(this.logits(ids, batch), safeTargets, weights, Math.max(count, 1));
  }

  /**
   * Runs new positions `ids` [batch, time] after the `cache` (none: a prompt from position 0) and returns the
   * logits of the last new position of each row [batch, vocab] (with `all`, of every new position
   * [batch·time, vocab]) and the cache extended by them. Consumes `cache`: its tensors are disposed, so keep only
   * the returned one. Call outside tf.tidy (the returned tensors are the caller's to dispose).
   */
  forwardStep(ids: Int32Array, batch: number, cache?: LlamaKvCache, opts: { all?: boolean } = {}): { logits: tf.Tensor2D; cache: LlamaKvCache } {
    const time = ids.length / batch;
    const out = tf.tidy(() => {
      const { hidden, keys, values } = this.forward(ids, batch, cache);
      const rows = opts.all || time === 1 ? hidden : (tf.reshape(tf.slice(tf.reshape(hidden, [batch, time, -1]), [0, time - 1, 0], [batch, 1, -1]), [batch, -1]) as tf.Tensor2D);
      return { logits: this.head(rows), keys, values };
    });
    disposeKvCache(cache);
    return { logits: out.logits, cache: { batch, length: (cache?.length ?? 0) + time, keys: out.keys, values: out.values } };
  }
}

/** 1 for each target in the vocabulary, 0 for a negative (padding) one, which becomes 0 so every one-hot row stays in range. */
function targetWeights(targets: Int32Array, vocab: number): { weights: Float32Array; safeTargets: Int32Array; count: number } {
  const weights = new Float32Array(targets.length);
  const safeTargets = new Int32Array(targets.length);
  let count = 0;
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    if (t < 0) continue;
    if (t >= vocab) throw new Error(`target ${t} is outside the vocabulary (${vocab})`);
    weights[i] = 1;
    safeTargets[i] = t;
    count++;
  }
  return { weights, safeTargets, count };
}
