/**
 * Plasticity measurements of one model version: how well it can still learn something new (a seeded probe
 * task learned by a throw-away copy, relative to a freshly initialised model given the same budget), the
 * share of dormant MLP units, weight-norm growth, the effective rank of the MLP features, the gradient norm;
 * and the interventions that restore it (shrink-and-perturb, reset of dormant units). Used by the cycle's
 * training queue and by the learning benchmark (bench/ re-exports it).
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import { type Probe, evaluateLoss, exactMatch } from './evaluate.ts';
import { gelu, layerNorm, linear, causalAttention, embed } from './ops.ts';
import { BatchSampler } from './data.ts';
import { Rng, deriveSeed } from './random.ts';
import { encodeDocument, PAD } from './tokenizer.ts';
import { trainModel } from './train.ts';
import { LanguageModel, initWeights } from './transformer.ts';
import { type Weights, cloneWeights } from './weights.ts';

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
  /** Mean token loss on the probe facts before the budget. */
  lossBefore: number;
  /** Mean token loss on the probe facts after the budget. */
  loss: number;
  /** Learning achieved: ln(lossBefore / loss), 0 when nothing was learned, unbounded above. */
  gain: number;
  /** Training loss curve of the probe copy (one point per step). */
  lossCurve: number[];
}

/** The probe's training recipe: no weight decay, no pull, so only the weights' own state decides how fast they learn. */
function probeRecipe(opts: PlasticityOptions) {
  return {
    steps: opts.steps,
    batchSize: opts.batchSize,
    learningRate: opts.learningRate,
    warmupSteps: opts.warmupSteps,
    weightDecay: 0,
    gradClip: 1,
    l2Pull: 0,
    seed: opts.seed,
  };
}

/**
 * Trains a throw-away copy of `weights` for the fixed budget on the probe task and measures what it
 * learned. The weights passed in are not changed (trainModel works on its own copy).
 */
export async function probeLearning(config: ModelConfig, weights: Weights, opts: PlasticityOptions): Promise<ProbeOutcome> {
  const task = probeTask(opts.seed, opts.facts);
  const before = LanguageModel.create(config, weights);
  let lossBefore: number;
  try {
    lossBefore = evaluateLoss(before, task.docs).meanLoss;
  } finally {
    before.dispose();
  }
  const result = await trainModel({
    config,
    init: weights,
    sources: [{ name: 'plasticity-probe', weight: 1, docs: task.docs }],
    recipe: probeRecipe(opts),
    lossEvery: 1,
  });
  const model = LanguageModel.create(config, result.weights);
  try {
    const loss = evaluateLoss(model, task.docs).meanLoss;
    return { exactMatch: exactMatch(model, task.probes).accuracy, lossBefore, loss, gain: Math.log(lossBefore / loss), lossCurve: result.lossCurve };
  } finally {
    model.dispose();
  }
}

/** The reference a plasticity ratio divides by: a freshly initialised model given the same budget. */
export async function freshReference(config: ModelConfig, initSeed: number, opts: PlasticityOptions): Promise<ProbeOutcome> {
  return probeLearning(config, initWeights(config, initSeed), opts);
}

/**
 * The capped ratio the benchmark reported first: exact match of the copy over a fresh model's exact match.
 * Kept for the benchmark's earlier series; NaN when the fresh model learned nothing.
 */
export function plasticityRatio(outcome: ProbeOutcome, reference: ProbeOutcome): number {
  return reference.exactMatch > 0 ? outcome.exactMatch / reference.exactMatch : Number.NaN;
}

/**
 * The uncapped plasticity ratio: how far below the uninformed loss the copy gets within the budget, over
 * how far a fresh model gets with the same budget and seed, both on a log scale:
 * ln(L₀ / L_candidate) / ln(L₀ / L_fresh), with L₀ the fresh model's probe loss before training (the
 * loss of knowing nothing). 1: learns the probe as well as a new model; below 1: plasticity lost (negative
 * when it ends worse than knowing nothing); above 1: what it knows helps. NaN when the fresh model learned
 * nothing (the budget is too small to measure anything).
 */
export function reachRatio(outcome: ProbeOutcome, reference: ProbeOutcome): number {
  const fresh = Math.log(reference.lossBefore / reference.loss);
  return fresh > 0 ? Math.log(reference.lossBefore / outcome.loss) / fresh : Number.NaN;
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

/** Per MLP layer: mean |activation| per unit, and the participation ratio of the centred feature covariance. */
export interface MlpFeatures {
  activity: Float64Array[];
  effectiveRank: number[];
}

/**
 * The MLP layers' post-GELU activations over every non-padding position of `docs` (first `context` tokens
 * of each, BOS included): mean |activation| per unit, and the effective rank of the features as the
 * participation ratio tr(C)² / ‖C‖²_F of their centred covariance C (1 when one direction carries all the
 * variance, the width when all carry the same). Reimplements LanguageModel.hidden's forward pass block by
 * block with the same ops, because the model does not expose its intermediate activations.
 */
export function mlpFeatures(model: LanguageModel, docs: string[], batchSize = 16): MlpFeatures {
  const { context, dModel: d, nLayers, nHeads } = model.config;
  const v = (name: string) => model.variables.get(name)!;
  const width = v('blocks.0.mlp.fc.weight').shape[1]!;
  const absSums = Array.from({ length: nLayers }, () => new Float64Array(width));
  const sums = Array.from({ length: nLayers }, () => new Float64Array(width));
  const grams = Array.from({ length: nLayers }, () => new Float64Array(width * width));
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
    const [stats, gram] = tf.tidy(() => {
      const pos = time === context ? v('pos_emb') : tf.slice(v('pos_emb'), [0, 0], [time, d]);
      let x = tf.reshape(tf.add(tf.reshape(embed(v('tok_emb') as tf.Tensor2D, ids), [batch.length, time, d]), pos), [batch.length * time, d]) as tf.Tensor2D;
      const m = tf.tensor2d(mask, [1, mask.length]);
      const mt = tf.tensor2d(mask, [mask.length, 1]);
      const out: tf.Tensor[] = [];
      const gr: tf.Tensor[] = [];
      for (let l = 0; l < nLayers; l++) {
        const w = (n: string) => v(`blocks.${l}.${n}`) as tf.Tensor2D;
        const b = (n: string) => v(`blocks.${l}.${n}`) as tf.Tensor1D;
        const qkv = linear(layerNorm(x, b('ln1.gain'), b('ln1.bias')), w('attn.qkv.weight'), b('attn.qkv.bias'));
        x = tf.add(x, linear(causalAttention(qkv, batch.length, time, nHeads), w('attn.proj.weight'), b('attn.proj.bias')));
        const fc = gelu(linear(layerNorm(x, b('ln2.gain'), b('ln2.bias')), w('mlp.fc.weight'), b('mlp.fc.bias')));
        // Masked column sums as plain 2-D matmuls (the fast path on wasm); padding rows are zeroed for the Gram.
        out.push(tf.matMul(m, tf.abs(fc)), tf.matMul(m, fc));
        const masked = tf.mul(fc, mt);
        gr.push(tf.matMul(masked, masked, true, false));
        x = tf.add(x, linear(fc, w('mlp.proj.weight'), b('mlp.proj.bias')));
      }
      return [tf.concat(out, 0), tf.stack(gr)];
    });
    const values = stats.dataSync();
    const gramValues = gram.dataSync();
    tf.dispose([stats, gram]);
    for (let l = 0; l < nLayers; l++) {
      for (let u = 0; u < width; u++) {
        absSums[l]![u]! += values[2 * l * width + u]!;
        sums[l]![u]! += values[(2 * l + 1) * width + u]!;
      }
      const g = grams[l]!;
      for (let i = 0; i < g.length; i++) g[i]! += gramValues[l * width * width + i]!;
    }
  }
  const n = Math.max(1, positions);
  const effectiveRank = grams.map((g, l) => {
    const mean = sums[l]!.map((x) => x / n);
    let trace = 0;
    let frob = 0;
    for (let i = 0; i < width; i++) {
      for (let j = 0; j < width; j++) {
        const c = g[i * width + j]! / n - mean[i]! * mean[j]!;
        frob += c * c;
        if (i === j) trace += c;
      }
    }
    return frob > 0 ? (trace * trace) / frob : 0;
  });
  for (const s of absSums) for (let u = 0; u < s.length; u++) s[u]! /= n;
  return { activity: absSums, effectiveRank };
}

/** Mean |activation| per MLP unit, per layer (see mlpFeatures). */
export function mlpActivity(model: LanguageModel, docs: string[], batchSize = 16): Float64Array[] {
  return mlpFeatures(model, docs, batchSize).activity;
}

/** τ-dormant units of per-unit activities: a unit is dormant when its mean |activation| is at most τ times the layer's average. */
export function dormantFromActivity(activity: Float64Array[], threshold = DORMANT_TAU): DormantUnits & { masks: boolean[][] } {
  let dormant = 0;
  let total = 0;
  const masks = activity.map((units) => {
    const avg = units.reduce((a, b) => a + b, 0) / units.length;
    return [...units].map((x) => x <= threshold * avg);
  });
  const perLayer = masks.map((mask) => {
    const k = mask.filter(Boolean).length;
    dormant += k;
    total += mask.length;
    return k / mask.length;
  });
  return { fraction: total ? dormant / total : 0, perLayer, threshold, masks };
}

/** τ used for dormant units throughout (Sokar et al. 2023 use 0 to 0.1 for their networks). */
export const DORMANT_TAU = 0.1;

/**
 * τ-dormant units (Sokar et al. 2023): a unit is dormant when its mean |activation| is at most τ times
 * the layer's average over units. τ = 0.1 by default.
 */
export function dormantUnits(model: LanguageModel, docs: string[], threshold = DORMANT_TAU): DormantUnits {
  const { fraction, perLayer } = dormantFromActivity(mlpActivity(model, docs), threshold);
  return { fraction, perLayer, threshold };
}

/** Global L2 norm of all weights. */
export function weightNorm(weights: Weights): number {
  let sum = 0;
  for (const t of weights.values()) for (let i = 0; i < t.data.length; i++) sum += t.data[i]! * t.data[i]!;
  return Math.sqrt(sum);
}

/** Global L2 norm of the loss gradient at `weights` on one seeded batch of the probe task. */
export function gradientNorm(config: ModelConfig, weights: Weights, opts: PlasticityOptions): number {
  const task = probeTask(opts.seed, opts.facts);
  const { ids, targets } = new BatchSampler([{ name: 'plasticity-probe', weight: 1, docs: task.docs }], config.context, opts.seed).batch(1, opts.batchSize);
  const model = LanguageModel.create(config, weights);
  try {
    const { value, grads } = tf.variableGrads(() => model.loss(ids, targets, opts.batchSize), [...model.variables.values()]);
    const norm = tf.tidy(() => tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
    tf.dispose([value, ...Object.values(grads)]);
    return norm;
  } finally {
    model.dispose();
  }
}

/** One version's plasticity record: every number the registry, the report and the gate read. */
export interface PlasticityRecord {
  /** Uncapped ratio ln(L₀ / L_candidate) / ln(L₀ / L_fresh) (see reachRatio). */
  ratio: number;
  /** L₀: the fresh model's probe loss before training. */
  uninformedLoss: number;
  /** Probe loss after the budget: candidate copy, fresh model (the reference). */
  probeLoss: number;
  freshProbeLoss: number;
  /** Share of τ-dormant MLP units on the probe text, and τ. */
  dormantFraction: number;
  dormantTau: number;
  /** ‖W‖ / ‖W₀‖ against the initial weights W₀. */
  weightNormGrowth: number;
  /** Mean over MLP layers of the features' participation ratio (see mlpFeatures), and the MLP width it is out of. */
  effectiveRank: number;
  mlpWidth: number;
  /** ‖∇L‖ on one probe batch at the candidate's weights. */
  gradientNorm: number;
  /** The probe budget the numbers were measured with. */
  budget: PlasticityOptions;
}

/** The default probe budget: small enough to cost a fraction of a training run, big enough that a fresh model learns. */
export const DEFAULT_PROBE_BUDGET: PlasticityOptions = { facts: 16, steps: 30, batchSize: 8, learningRate: 3e-3, warmupSteps: 3, seed: 0x9106e };

/**
 * Measures a version's plasticity: a copy of `weights` and a fresh model initialised with `initSeed` each
 * train for the same budget on the probe task; the record holds the reach ratio and the structural numbers.
 * `initial` (default: the fresh model's weights) is what the weight-norm growth is measured against.
 */
export async function measurePlasticity(
  config: ModelConfig,
  weights: Weights,
  opts: { initSeed: number; budget?: PlasticityOptions; initial?: Weights; reference?: ProbeOutcome },
): Promise<PlasticityRecord> {
  const budget = opts.budget ?? DEFAULT_PROBE_BUDGET;
  const fresh = initWeights(config, opts.initSeed);
  const reference = opts.reference ?? (await probeLearning(config, fresh, budget));
  const outcome = await probeLearning(config, weights, budget);
  const task = probeTask(budget.seed, budget.facts);
  const model = LanguageModel.create(config, weights);
  let features: MlpFeatures;
  try {
    features = mlpFeatures(model, task.docs);
  } finally {
    model.dispose();
  }
  const dormant = dormantFromActivity(features.activity, DORMANT_TAU);
  return {
    ratio: reachRatio(outcome, reference),
    uninformedLoss: reference.lossBefore,
    probeLoss: outcome.loss,
    freshProbeLoss: reference.loss,
    dormantFraction: dormant.fraction,
    dormantTau: DORMANT_TAU,
    weightNormGrowth: weightNorm(weights) / weightNorm(opts.initial ?? fresh),
    effectiveRank: features.effectiveRank.reduce((a, b) => a + b, 0) / features.effectiveRank.length,
    mlpWidth: features.activity[0]!.length,
    gradientNorm: gradientNorm(config, weights, budget),
    budget,
  };
}

/**
 * Shrink-and-perturb (Ash & Adams 2020): W ← λ·W + σ·W_fresh for every matrix and bias, with W_fresh a
 * fresh initialisation from `seed`; layer-norm gains shrink toward 1 instead (a gain of 0 would silence the layer).
 */
export function shrinkAndPerturb(config: ModelConfig, weights: Weights, opts: { shrink: number; noise: number; seed: number }): Weights {
  const fresh = initWeights(config, opts.seed);
  const out: Weights = new Map();
  for (const [name, t] of weights) {
    const f = fresh.get(name)!.data;
    const data = new Float32Array(t.data.length);
    const gain = name.endsWith('.gain');
    for (let i = 0; i < data.length; i++) data[i] = gain ? 1 + opts.shrink * (t.data[i]! - 1) : opts.shrink * t.data[i]! + opts.noise * f[i]!;
    out.set(name, { shape: [...t.shape], data });
  }
  return out;
}

/**
 * Resets the given MLP units (ReDo, Sokar et al. 2023): each unit's incoming weights (its column of
 * mlp.fc.weight) are re-initialised from `seed`, its bias zeroed, its outgoing weights (row of
 * mlp.proj.weight) zeroed, so the network's function is unchanged at the reset and the unit can learn
 * again. `moments` (AdamW m and v by weight name, when the caller keeps optimizer state) are zeroed at
 * the same entries. Returns new weights and the number of units reset.
 */
export function resetUnits(
  config: ModelConfig,
  weights: Weights,
  masks: boolean[][],
  seed: number,
  moments: Map<string, Float32Array>[] = [],
): { weights: Weights; reset: number } {
  const fresh = initWeights(config, seed);
  const out = cloneWeights(weights);
  let reset = 0;
  for (let l = 0; l < config.nLayers; l++) {
    const fcName = `blocks.${l}.mlp.fc.weight`;
    const biasName = `blocks.${l}.mlp.fc.bias`;
    const projName = `blocks.${l}.mlp.proj.weight`;
    const fc = out.get(fcName)!;
    const [dIn, width] = fc.shape as [number, number];
    const bias = out.get(biasName)!.data;
    const proj = out.get(projName)!;
    const dOut = proj.shape[1]!;
    const freshFc = fresh.get(fcName)!.data;
    (masks[l] ?? []).forEach((dormant, u) => {
      if (!dormant) return;
      reset++;
      for (let i = 0; i < dIn; i++) fc.data[i * width + u] = freshFc[i * width + u]!;
      bias[u] = 0;
      proj.data.fill(0, u * dOut, (u + 1) * dOut);
      for (const m of moments) {
        const mf = m.get(fcName);
        if (mf) for (let i = 0; i < dIn; i++) mf[i * width + u] = 0;
        const mb = m.get(biasName);
        if (mb) mb[u] = 0;
        m.get(projName)?.fill(0, u * dOut, (u + 1) * dOut);
      }
    });
  }
  return { weights: out, reset };
}

/** Resets the τ-dormant MLP units of `weights` as measured on `docs` (see resetUnits). */
export function resetDormantUnits(
  config: ModelConfig,
  weights: Weights,
  docs: string[],
  opts: { seed: number; threshold?: number; moments?: Map<string, Float32Array>[] },
): { weights: Weights; reset: number; fraction: number } {
  const model = LanguageModel.create(config, weights);
  let activity: Float64Array[];
  try {
    activity = mlpActivity(model, docs);
  } finally {
    model.dispose();
  }
  const dormant = dormantFromActivity(activity, opts.threshold ?? DORMANT_TAU);
  return { ...resetUnits(config, weights, dormant.masks, opts.seed, opts.moments), fraction: dormant.fraction };
}

/**
 * The interventions a cycle may apply (recorded in the version's recipe): the first two change the starting
 * weights (applyInterventions); 'l2-init' and 'rewarm' change the training (the recipe's l2Anchor and rewarm).
 */
export type Intervention = 'shrink-perturb' | 'dormant-reset' | 'l2-init' | 'rewarm';

/**
 * Shrink-and-perturb strength the cycle uses: λ = 0.9 keeps most of what the model knows, σ = 0.1 adds a tenth
 * of a fresh initialisation (std 0.002 on the matrices), enough to move units off a plateau.
 */
export const SHRINK_PERTURB = { shrink: 0.9, noise: 0.1 } as const;

/**
 * Applies `interventions` in order to starting weights: shrink-and-perturb (SHRINK_PERTURB, fresh draw from
 * `seed`), then a reset of the τ-dormant MLP units measured on the probe text (re-initialised from `seed`).
 * Deterministic, so a resumed training run starts from the same weights. Returns what each did.
 */
export function applyInterventions(
  config: ModelConfig,
  weights: Weights,
  interventions: readonly Intervention[],
  seed: number,
): { weights: Weights; applied: { intervention: Intervention; reset?: number }[] } {
  let out = weights;
  const applied: { intervention: Intervention; reset?: number }[] = [];
  for (const intervention of interventions) {
    if (intervention === 'shrink-perturb') {
      out = shrinkAndPerturb(config, out, { ...SHRINK_PERTURB, seed: deriveSeed(seed, 0x5a9) });
      applied.push({ intervention });
    } else if (intervention === 'dormant-reset') {
      const r = resetDormantUnits(config, out, probeTask(DEFAULT_PROBE_BUDGET.seed, DEFAULT_PROBE_BUDGET.facts).docs, { seed: deriveSeed(seed, 0xd0e) });
      out = r.weights;
      applied.push({ intervention, reset: r.reset });
    }
  }
  return { weights: out, applied };
}
