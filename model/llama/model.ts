/**
 * The Llama-family decoder: token embedding, pre-norm blocks of RMSNorm -> grouped-query causal attention with
 * rotary positions -> residual, RMSNorm -> SwiGLU MLP -> residual, a final RMSNorm and a tied or untied output head.
 * Activations stay 2-D ([batch·time, width]) between blocks, as in the GPT, so every weight matmul is a plain 2-D
 * matmul. `forwardStep` runs new positions against a key-value cache for generation.
 */
import * as tf from '@tensorflow/tfjs';
import type { Weights } from '../weights.ts';
import { crossEntropy, embed } from '../ops.ts';
import { assignVariables, readVariables } from '../variables.ts';
import { type LlamaConfig, llamaWeightShapes, validateLlamaConfig } from './config.ts';
import { type Rotary, applyRotary, dense, groupedAttention, outputHead, rmsNorm, rotaryAt, swiglu, toHeads } from './ops.ts';
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
  /**
   * Recompute each block in the backward pass instead of keeping its intermediates (gradient checkpointing): memory
   * for one block's activations instead of every block's, for ~1/3 more compute. Off by default; the trainer of a
   * large model turns it on. Values and gradients are the same either way.
   */
  recompute = false;

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
    return readVariables(this.variables);
  }

  /** Overwrites every variable with `weights` (same config). */
  loadWeights(weights: Weights): void {
    checkLlamaWeights(this.config, weights);
    assignVariables(this.variables, weights);
  }

  /** Frees the variables; the model is unusable afterwards. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.variables.values()) v.dispose();
  }

  /**
   * Final hidden states [batch·time, dModel] of row-major ids [batch, time] at positions offset..offset+time−1,
   * with the new keys and values appended to `cache`'s (positions 0..offset−1) when `withCache`. Call inside tf.tidy.
   */
  private forward(ids: Int32Array, batch: number, cache?: LlamaKvCache, withCache = false): { hidden: tf.Tensor2D; keys: tf.Tensor3D[]; values: tf.Tensor3D[] } {
    const { nHeads: h, nKvHeads: kv, headDim: hd, context, rmsEps: eps, ropeBase } = this.config;
    const time = ids.length / batch;
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(time) || time < 1) throw new Error(`${ids.length} ids do not form ${batch} rows`);
    const offset = cache?.length ?? 0;
    if (cache && cache.batch !== batch) throw new Error(`the cache holds ${cache.batch} rows, not ${batch}`);
    if (offset + time > context) throw new Error(`sequence length ${offset + time} exceeds the model context ${context}`);
    const rotary = rotaryAt(offset, time, hd, ropeBase);
    let x = embed(this.tokEmb, ids);
    const keys: tf.Tensor3D[] = [];
    const values: tf.Tensor3D[] = [];
    const dims = { batch, time, offset, heads: h, kvHeads: kv, headDim: hd, eps };
    this.blocks.forEach((b, i) => {
      if (this.recompute && !withCache) {
        x = recomputedBlock(x, blockWeights(b), rotary, dims);
        return;
      }
      const out = runBlock(x, blockWeights(b), rotary, dims, cache && { k: cache.keys[i]!, v: cache.values[i]! });
      x = out.x;
      keys.push(out.k);
      values.push(out.v);
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
      const { hidden, keys, values } = this.forward(ids, batch, cache, true);
      const rows = opts.all || time === 1 ? hidden : (tf.reshape(tf.slice(tf.reshape(hidden, [batch, time, -1]), [0, time - 1, 0], [batch, 1, -1]), [batch, -1]) as tf.Tensor2D);
      return { logits: this.head(rows), keys, values };
    });
    disposeKvCache(cache);
    return { logits: out.logits, cache: { batch, length: (cache?.length ?? 0) + time, keys: out.keys, values: out.values } };
  }
}

type BlockWeights = [tf.Tensor1D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
type BlockDims = { batch: number; time: number; offset: number; heads: number; kvHeads: number; headDim: number; eps: number };

function blockWeights(b: Block): BlockWeights {
  return [b.attnNorm, b.q, b.k, b.v, b.o, b.mlpNorm, b.gate, b.up, b.down];
}

/** One block: x + attention(norm(x)), then + mlp(norm(·)); with the new keys and values (after `past`'s, when given). */
function runBlock(x: tf.Tensor2D, w: BlockWeights, rotary: Rotary, dims: BlockDims, past?: { k: tf.Tensor3D; v: tf.Tensor3D }): { x: tf.Tensor2D; k: tf.Tensor3D; v: tf.Tensor3D } {
  const [attnNorm, wq, wk, wv, wo, mlpNorm, gate, up, down] = w;
  const { batch, time, heads, kvHeads, headDim, eps } = dims;
  const a = rmsNorm(x, attnNorm, eps);
  const q = applyRotary(dense(a, wq), rotary, batch, time, heads, headDim);
  let k = toHeads(applyRotary(dense(a, wk), rotary, batch, time, kvHeads, headDim), batch, time, kvHeads, headDim);
  let v = toHeads(dense(a, wv), batch, time, kvHeads, headDim);
  if (past) {
    k = tf.concat([past.k, k], 1);
    v = tf.concat([past.v, v], 1);
  }
  const h = tf.add(x, dense(groupedAttention(q, k, v, dims), wo)) as tf.Tensor2D;
  const m = rmsNorm(h, mlpNorm, eps);
  return { x: tf.add(h, dense(swiglu(dense(m, gate), dense(m, up)), down)) as tf.Tensor2D, k, v };
}

/**
 * tf.grads called from inside a backward pass (a recomputed block's). tfjs 4's engine keeps one active tape: an inner
 * gradients() that starts at depth 0 replaces it, then clears it, and the outer backward's clean-up reads it. So the
 * outer tape is put back afterwards; the inner tape's saved tensors are freed by the inner call as usual.
 */
function gradsInsideBackward(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outer;
  }
}

/**
 * A block whose forward keeps nothing but its input for the backward, which recomputes the block under its own tape
 * (gradient checkpointing). tfjs frees a forward pass's intermediates only when the whole gradient is done, so a
 * plain forward holds every block's (~100 MB per SmolLM2 block at 4 x 128 tokens); this holds one block's at a time,
 * for one more forward pass of compute. Same values and gradients as runBlock.
 */
function recomputedBlock(x: tf.Tensor2D, w: BlockWeights, rotary: Rotary, dims: BlockDims): tf.Tensor2D {
  const n = w.length;
  const op = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inputs = args.slice(0, -1) as tf.Tensor[];
    save([...inputs, rotary.cos, rotary.sin]);
    return {
      value: runBlock(inputs[0] as tf.Tensor2D, inputs.slice(1) as BlockWeights, rotary, dims).x,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const rot = { cos: saved[n + 1] as tf.Tensor3D, sin: saved[n + 2] as tf.Tensor3D };
        const f = (...xs: tf.Tensor[]) => runBlock(xs[0] as tf.Tensor2D, xs.slice(1) as BlockWeights, rot, dims).x;
        return gradsInsideBackward(f, saved.slice(0, n + 1), dy);
      },
    };
  }) as Parameters<typeof tf.customGrad<tf.Tensor2D>>[0]);
  return op(x, ...w);
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
