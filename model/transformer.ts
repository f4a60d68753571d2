/**
 * The decoder-only transformer: token + learned position embeddings, pre-norm blocks of causal
 * multi-head self-attention and a GELU MLP, a final layer norm and an output head tied to the token
 * embedding. Activations are kept 2-D ([batch·time, width]) between blocks so that every weight
 * matmul is a plain 2-D matmul (the fast path on wasm).
 */
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, validateConfig, weightShapes } from './config.ts';
import { causalAttention, crossEntropy, distillKL, embed, gelu, layerNorm, linear, tiedHead } from './ops.ts';
import { Rng, deriveSeed, hashString } from './random.ts';
import { PAD } from './tokenizer.ts';
import { assignVariables, readVariables } from './variables.ts';
import { type Weights, checkWeights } from './weights.ts';

const INIT_STD = 0.02;

/**
 * Seeded initial weights, computed in plain JS so they are bit-identical on every backend: N(0, 0.02)
 * for matrices, with the residual output projections scaled by 1/sqrt(2·nLayers) (GPT-2) so the
 * residual stream does not grow with depth; zero biases, unit gains. Each tensor draws from a stream
 * seeded by (seed, its name), so changing the shape of one tensor does not change the others.
 */
export function initWeights(config: ModelConfig, seed: number): Weights {
  const weights: Weights = new Map();
  const residualStd = INIT_STD / Math.sqrt(2 * config.nLayers);
  for (const [name, shape] of weightShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('.gain')) {
      data.fill(1);
    } else if (!name.endsWith('.bias')) {
      const std = name.endsWith('attn.proj.weight') || name.endsWith('mlp.proj.weight') ? residualStd : INIT_STD;
      const rng = new Rng(deriveSeed(seed, hashString(name)));
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    }
    weights.set(name, { shape, data });
  }
  return weights;
}

interface Block {
  ln1Gain: tf.Variable<tf.Rank.R1>;
  ln1Bias: tf.Variable<tf.Rank.R1>;
  qkvWeight: tf.Variable<tf.Rank.R2>;
  qkvBias: tf.Variable<tf.Rank.R1>;
  projWeight: tf.Variable<tf.Rank.R2>;
  projBias: tf.Variable<tf.Rank.R1>;
  ln2Gain: tf.Variable<tf.Rank.R1>;
  ln2Bias: tf.Variable<tf.Rank.R1>;
  fcWeight: tf.Variable<tf.Rank.R2>;
  fcBias: tf.Variable<tf.Rank.R1>;
  mlpProjWeight: tf.Variable<tf.Rank.R2>;
  mlpProjBias: tf.Variable<tf.Rank.R1>;
}

/** A language model whose weights live in tf.Variables (trainable in place); dispose() frees them. */
export class LanguageModel {
  /** The variables by weight name, in weightShapes order (the optimiser's order). */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  private readonly tokEmb: tf.Variable<tf.Rank.R2>;
  private readonly posEmb: tf.Variable<tf.Rank.R2>;
  private readonly blocks: Block[];
  private readonly lnFGain: tf.Variable<tf.Rank.R1>;
  private readonly lnFBias: tf.Variable<tf.Rank.R1>;
  private disposed = false;

  private constructor(
    readonly config: ModelConfig,
    variables: Map<string, tf.Variable>,
  ) {
    this.variables = variables;
    const v = <R extends tf.Rank>(name: string) => variables.get(name)! as tf.Variable<R>;
    this.tokEmb = v('tok_emb');
    this.posEmb = v('pos_emb');
    this.blocks = [];
    for (let i = 0; i < config.nLayers; i++) {
      const p = `blocks.${i}.`;
      this.blocks.push({
        ln1Gain: v(`${p}ln1.gain`),
        ln1Bias: v(`${p}ln1.bias`),
        qkvWeight: v(`${p}attn.qkv.weight`),
        qkvBias: v(`${p}attn.qkv.bias`),
        projWeight: v(`${p}attn.proj.weight`),
        projBias: v(`${p}attn.proj.bias`),
        ln2Gain: v(`${p}ln2.gain`),
        ln2Bias: v(`${p}ln2.bias`),
        fcWeight: v(`${p}mlp.fc.weight`),
        fcBias: v(`${p}mlp.fc.bias`),
        mlpProjWeight: v(`${p}mlp.proj.weight`),
        mlpProjBias: v(`${p}mlp.proj.bias`),
      });
    }
    this.lnFGain = v('ln_f.gain');
    this.lnFBias = v('ln_f.bias');
  }

  /** Builds a model on the current backend from weights that must match the config exactly. */
  static create(config: ModelConfig, weights: Weights): LanguageModel {
    const valid = validateConfig(config);
    checkWeights(valid, weights);
    const variables = new Map<string, tf.Variable>();
    for (const name of weightShapes(valid).keys()) {
      const w = weights.get(name)!;
      // Variables are unnamed: tfjs names are global, and two models (candidate, parent) may coexist.
      variables.set(
        name,
        tf.tidy(() => tf.variable(tf.tensor(w.data, w.shape, 'float32'), true)),
      );
    }
    return new LanguageModel(valid, variables);
  }

  /** Copies the current weights out of the backend (fresh arrays, safe to keep after dispose). */
  exportWeights(): Weights {
    return readVariables(this.variables);
  }

  /** Overwrites every variable with `weights` (same config). */
  loadWeights(weights: Weights): void {
    checkWeights(this.config, weights);
    assignVariables(this.variables, weights);
  }

  /** Frees the variables; the model is unusable afterwards. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.variables.values()) v.dispose();
  }

  /**
   * Final hidden states [batch·time, dModel] for row-major token ids [batch, time] at positions
   * 0..time-1. Call inside tf.tidy.
   */
  hidden(ids: Int32Array, batch: number): tf.Tensor2D {
    const time = ids.length / batch;
    const { dModel: d, nHeads: h, context } = this.config;
    if (!Number.isInteger(time) || time < 1) throw new Error(`${ids.length} ids do not form ${batch} rows`);
    if (time > context) throw new Error(`sequence length ${time} exceeds the model context ${context}`);
    const pos = time === context ? this.posEmb : tf.slice(this.posEmb, [0, 0], [time, d]);
    let x = tf.reshape(tf.add(tf.reshape(embed(this.tokEmb, ids), [batch, time, d]), pos), [batch * time, d]) as tf.Tensor2D;

    for (const b of this.blocks) {
      const qkv = linear(layerNorm(x, b.ln1Gain, b.ln1Bias), b.qkvWeight, b.qkvBias);
      x = tf.add(x, linear(causalAttention(qkv, batch, time, h), b.projWeight, b.projBias));
      const fc = gelu(linear(layerNorm(x, b.ln2Gain, b.ln2Bias), b.fcWeight, b.fcBias));
      x = tf.add(x, linear(fc, b.mlpProjWeight, b.mlpProjBias));
    }
    return layerNorm(x, this.lnFGain, this.lnFBias);
  }

  /** Output-head logits [rows, vocab] for hidden states [rows, dModel] (tied to the token embedding). */
  head(hidden: tf.Tensor2D): tf.Tensor2D {
    return tiedHead(hidden, this.tokEmb);
  }

  /** Logits [batch·time, vocab] for row-major ids [batch, time]. Call inside tf.tidy. */
  logits(ids: Int32Array, batch: number): tf.Tensor2D {
    return this.head(this.hidden(ids, batch));
  }

  /**
   * Mean next-token cross-entropy over the non-PAD targets. `ids` and `targets` are row-major
   * [batch, time] token arrays (targets are ids shifted by one). Call inside tf.tidy or variableGrads.
   */
  loss(ids: Int32Array, targets: Int32Array, batch: number): tf.Scalar {
    const { weights, count } = targetWeights(targets);
    return crossEntropy(this.logits(ids, batch), targets, weights, count);
  }

  /**
   * Training loss with distillation: (1 − weight) · cross-entropy + weight · T² · KL(teacher ‖ student)
   * at temperature T, both over the non-PAD targets. `teacherProbs` [batch·time, vocab] is
   * softmax(teacher logits / T) on the same ids (see teacherProbs). Call inside variableGrads.
   */
  distillLoss(
    ids: Int32Array,
    targets: Int32Array,
    batch: number,
    teacherProbs: tf.Tensor2D,
    temperature: number,
    weight: number,
    /** Per row, 1 to distil it and 0 for cross-entropy alone on that row; absent: every row is distilled. */
    rowMask?: Float32Array,
  ): tf.Scalar {
    const { weights, count } = targetWeights(targets);
    const logits = this.logits(ids, batch);
    if (rowMask) {
      // Each token of a distilled row: (1 − w)·CE + w·KL; of a row kept out: CE alone (its w share is CE too).
      const time = targets.length / batch;
      const kw = new Float32Array(weights.length);
      const cw = new Float32Array(weights.length);
      for (let i = 0; i < weights.length; i++) {
        const m = rowMask[Math.floor(i / time)]!;
        kw[i] = weights[i]! * m;
        cw[i] = weights[i]! * (1 - m);
      }
      const ce = crossEntropy(logits, targets, weights, count);
      const rest = crossEntropy(logits, targets, cw, count);
      const masked = distillKL(logits, teacherProbs, temperature, kw, count);
      return tf.add(tf.mul(ce, 1 - weight), tf.mul(tf.add(masked, rest), weight));
    }
    const kl = distillKL(logits, teacherProbs, temperature, weights, count);
    if (weight >= 1) return kl;
    return tf.add(tf.mul(crossEntropy(logits, targets, weights, count), 1 - weight), tf.mul(kl, weight));
  }

  /** softmax(logits / T) [batch·time, vocab] for row-major ids: the teacher side of distillLoss. Call inside tf.tidy. */
  teacherProbs(ids: Int32Array, batch: number, temperature: number): tf.Tensor2D {
    return tf.softmax(tf.div(this.logits(ids, batch), temperature)) as tf.Tensor2D;
  }
}

/** 1 for each non-PAD target, 0 for PAD, and how many there are (at least 1, so an all-PAD batch divides safely). */
function targetWeights(targets: Int32Array): { weights: Float32Array; count: number } {
  const weights = new Float32Array(targets.length);
  let count = 0;
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] !== PAD) {
      weights[i] = 1;
      count++;
    }
  }
  return { weights, count: Math.max(count, 1) };
}
