/**
 * Plasticity measurements of one model version: how well it can still learn something new (a seeded probe
 * task learned by a throw-away copy, relative to a freshly initialised model given the same budget), the
 * share of dormant MLP units, and the global weight norm.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../model/config.ts';
import { type Probe, evaluateLoss, exactMatch } from '../model/evaluate.ts';
import { gelu, layerNorm, linear, causalAttention, embed } from '../model/ops.ts';
import { Rng, deriveSeed } from '../model/random.ts';
import { encodeDocument, PAD } from '../model/tokenizer.ts';
import { trainModel } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import type { Weights } from '../model/weights.ts';

/** A small task the stream never contains: synthetic facts in a format of their own. */
export interface ProbeTask {
  /** The facts as training documents. */
  docs: string[];
  /** The same facts as prompt/completion pairs. */
  probes: Probe[];
}

// Letters and a sentence frame that no scenario drop uses, so the task is new to every model in the stream.
const ONSETS = ['gr', 'pl', 'sk', 'tr', 'bl', 'kr', 'st', 'fl', 'dw', 'sn', 'gl', 'pr'];
const NUCLEI = ['a', 'e', 'i', 'o', 'u', 'ai', 'ou', 'ee'];
const CODAS = ['m', 'nd', 'sk', 'rt', 'lp', 'x', 'ng', 'b'];

/** `facts` seeded facts "Locker <word> opens with <3 digits>.", all words distinct. */
export function probeTask(seed: number, facts: number): ProbeTask {
  const rng = new Rng(deriveSeed(seed, 0x9106e));
  const pick = <T>(xs: readonly T[]) => xs[rng.int(xs.length)]!;
  const words = new Set<string>();
  while (words.size < facts) {
    const w = pick(ONSETS) + pick(NUCLEI) + pick(CODAS) + pick(NUCLEI) + pick(CODAS);
    words.add(w[0]!.toUpperCase() + w.slice(1));
  }
  const probes = [...words].map((w) => ({ prompt: `Locker ${w} opens with `, completion: `${100 + rng.int(900)}.` }));
  return { docs: probes.map((p) => p.prompt + p.completion), probes };
}

/** The fixed budget a probe copy trains for. */
export interface PlasticityOptions {
  /** Number of probe facts. */
  facts: number;
  steps: number;
  batchSize: number;
  learningRate: number;
  warmupSteps: number;
  /** Seeds the probe task and the copy's batches; the same for every version, so versions compare. */
  seed: number;
}

/** What a model learned of the probe task within the budget. */
export interface ProbeOutcome {
  /** Exact match on the probe facts after the budget. */
  exactMatch: number;
  /** Mean token loss on the probe facts after the budget. */
  loss: number;
}

/**
 * Trains a throw-away copy of `weights` for the fixed budget on the probe task and measures what it
 * learned. The weights passed in are not changed (trainModel works on its own copy).
 */
export async function probeLearning(config: ModelConfig, weights: Weights, opts: PlasticityOptions): Promise<ProbeOutcome> {
  const task = probeTask(opts.seed, opts.facts);
  const result = await trainModel({
    config,
    init: weights,
    sources: [{ name: 'plasticity-probe', weight: 1, docs: task.docs }],
    recipe: {
      steps: opts.steps,
      batchSize: opts.batchSize,
      learningRate: opts.learningRate,
      warmupSteps: opts.warmupSteps,
      weightDecay: 0,
      gradClip: 1,
      l2Pull: 0,
      seed: opts.seed,
    },
  });
  const model = LanguageModel.create(config, result.weights);
  try {
    return { exactMatch: exactMatch(model, task.probes).accuracy, loss: evaluateLoss(model, task.docs).meanLoss };
  } finally {
    model.dispose();
  }
}

/** The reference a plasticity ratio divides by: a freshly initialised model given the same budget. */
export async function freshReference(config: ModelConfig, initSeed: number, opts: PlasticityOptions): Promise<ProbeOutcome> {
  return probeLearning(config, initWeights(config, initSeed), opts);
}

/**
 * Plasticity ratio: exact match the copy reached on the probe task divided by what a fresh model reached
 * with the same budget (1.0: learns new facts as well as a new model; below 1: plasticity lost). NaN when
 * the fresh model learned nothing (the budget is too small to measure anything).
 */
export function plasticityRatio(outcome: ProbeOutcome, reference: ProbeOutcome): number {
  return reference.exactMatch > 0 ? outcome.exactMatch / reference.exactMatch : Number.NaN;
}

/** Dormant-unit statistics of the MLP hidden layers. */
export interface DormantUnits {
  /** Share of all MLP hidden units that are dormant. */
  fraction: number;
  /** Per layer. */
  perLayer: number[];
  /** The threshold τ used. */
  threshold: number;
}

/**
 * The MLP layers' post-GELU activations: mean |activation| per unit over every non-padding position of
 * `docs` (first `context` tokens of each, BOS included). Reimplements LanguageModel.hidden's forward pass
 * block by block with the same ops, because the model does not expose its intermediate activations.
 */
export function mlpActivity(model: LanguageModel, docs: string[], batchSize = 16): Float64Array[] {
  const { context, dModel: d, nLayers, nHeads } = model.config;
  const v = (name: string) => model.variables.get(name)!;
  const width = v('blocks.0.mlp.fc.weight').shape[1]!;
  const sums = Array.from({ length: nLayers }, () => new Float64Array(width));
  let positions = 0;
  const rows = docs.map((doc) => encodeDocument(doc).slice(0, context)).sort((a, b) => a.length - b.length);
  for (let from = 0; from < rows.length; from += batchSize) {
    const batch = rows.slice(from, from + batchSize);
    const time = batch.at(-1)!.length;
    const ids = new Int32Array(batch.length * time).fill(PAD);
    const mask = new Float32Array(batch.length * time);
    batch.forEach((r, i) => {
      ids.set(r, i * time);
      mask.fill(1, i * time, i * time + r.length);
      positions += r.length;
    });
    const perLayer = tf.tidy(() => {
      const pos = time === context ? v('pos_emb') : tf.slice(v('pos_emb'), [0, 0], [time, d]);
      let x = tf.reshape(tf.add(tf.reshape(embed(v('tok_emb') as tf.Tensor2D, ids), [batch.length, time, d]), pos), [batch.length * time, d]) as tf.Tensor2D;
      const m = tf.tensor2d(mask, [1, mask.length]);
      const out: tf.Tensor[] = [];
      for (let l = 0; l < nLayers; l++) {
        const w = (n: string) => v(`blocks.${l}.${n}`) as tf.Tensor2D;
        const b = (n: string) => v(`blocks.${l}.${n}`) as tf.Tensor1D;
        const qkv = linear(layerNorm(x, b('ln1.gain'), b('ln1.bias')), w('attn.qkv.weight'), b('attn.qkv.bias'));
        x = tf.add(x, linear(causalAttention(qkv, batch.length, time, nHeads), w('attn.proj.weight'), b('attn.proj.bias')));
        const fc = gelu(linear(layerNorm(x, b('ln2.gain'), b('ln2.bias')), w('mlp.fc.weight'), b('mlp.fc.bias')));
        // Masked column sums of |activation| as a plain 2-D matmul (the fast path on wasm).
        out.push(tf.matMul(m, tf.abs(fc)));
        x = tf.add(x, linear(fc, w('mlp.proj.weight'), b('mlp.proj.bias')));
      }
      return tf.concat(out, 0);
    });
    const values = perLayer.dataSync();
    perLayer.dispose();
    for (let l = 0; l < nLayers; l++) for (let u = 0; u < width; u++) sums[l]![u]! += values[l * width + u]!;
  }
  for (const s of sums) for (let u = 0; u < s.length; u++) s[u]! /= Math.max(1, positions);
  return sums;
}

/**
 * τ-dormant units (Sokar et al. 2023): a unit is dormant when its mean |activation| is at most τ times
 * the layer's average over units. τ = 0.1 by default.
 */
export function dormantUnits(model: LanguageModel, docs: string[], threshold = 0.1): DormantUnits {
  const activity = mlpActivity(model, docs);
  let dormant = 0;
  let total = 0;
  const perLayer = activity.map((units) => {
    const avg = units.reduce((a, b) => a + b, 0) / units.length;
    const n = units.filter((x) => x <= threshold * avg).length;
    dormant += n;
    total += units.length;
    return n / units.length;
  });
  return { fraction: total ? dormant / total : 0, perLayer, threshold };
}

/** Global L2 norm of all weights. */
export function weightNorm(weights: Weights): number {
  let sum = 0;
  for (const t of weights.values()) for (let i = 0; i < t.data.length; i++) sum += t.data[i]! * t.data[i]!;
  return Math.sqrt(sum);
}
