/**
 * Fair retraining baselines for the learning-quality benchmark (issue 15, last part). Retraining from scratch
 * gets its own recipe, chosen by a small successive-halving search over the learning rate judged on the final
 * quality the benchmark measures (mean final exact match over probe suites, then mean final loss over text
 * suites), run once on the whole stream. Two rows then face the product's strategy at equal quality:
 * `retrain-every` (from scratch after every drop, FLOPs summed) and `retrain-once` (one run on all drops at the
 * end: the search's winning full-horizon trial). The search's FLOPs are charged to retraining.
 */
import type { ModelConfig } from '../model/config.ts';
import { trainModel } from '../model/train.ts';
import { initWeights } from '../model/transformer.ts';
import { evaluateSuites, retrainSources } from './runner.ts';
import type { UpdateRecipe } from './strategies.ts';
import { type StreamDrop, buildSuites } from './stream.ts';

/** Final quality of one model: the benchmark's two metric families. */
export interface Quality {
  /** Mean exact match over the probe suites (NaN when there are none). */
  finalExactMatch: number;
  /** Mean loss over the text suites (NaN when there are none). */
  finalLoss: number;
}

/** Quality tolerance of "equal or better": exact-match points and relative loss (the benchmark's default). */
export interface Tolerance {
  exactMatch: number;
  loss: number;
}

export const DEFAULT_TOLERANCE: Tolerance = { exactMatch: 0.02, loss: 0.02 };

/** True when `a`'s final quality is within the tolerance of `b`'s, or better, on both metrics (a metric b lacks is not compared). */
export function withinTolerance(a: Quality, b: Quality, tolerance: Tolerance = DEFAULT_TOLERANCE): boolean {
  const emOk = !Number.isFinite(b.finalExactMatch) || a.finalExactMatch >= b.finalExactMatch - tolerance.exactMatch;
  const lossOk = !Number.isFinite(b.finalLoss) || a.finalLoss <= b.finalLoss * (1 + tolerance.loss);
  return emOk && lossOk;
}

/**
 * Orders trials by final quality, best first: higher exact match wins unless the two are within the
 * exact-match tolerance, then lower loss. Negative when `a` is better.
 */
export function compareQuality(a: Quality, b: Quality, tolerance: Tolerance = DEFAULT_TOLERANCE): number {
  const em = (q: Quality) => (Number.isFinite(q.finalExactMatch) ? q.finalExactMatch : 0);
  const loss = (q: Quality) => (Number.isFinite(q.finalLoss) ? q.finalLoss : Number.POSITIVE_INFINITY);
  if (Math.abs(em(a) - em(b)) > tolerance.exactMatch) return em(b) - em(a);
  if (loss(a) !== loss(b)) return loss(a) < loss(b) ? -1 : 1;
  return em(b) - em(a);
}

/** One trial of the retraining search. */
export interface RetrainTrial {
  learningRate: number;
  /** Share of the default retraining horizon. */
  stepScale: number;
  minLearningRate: number;
  /** Steps this trial trained (its horizon). */
  steps: number;
  rung: number;
  flops: number;
  wallMs: number;
  quality: Quality;
  status: 'chosen' | 'kept' | 'pruned';
}

/** The search's result: the chosen recipe, the retrain-once run it produced, every trial and their FLOPs. */
export interface RetrainSearch {
  recipe: Pick<UpdateRecipe, 'learningRate' | 'minLearningRate' | 'warmupSteps'>;
  /** Share of the default retraining horizon (base steps + i · drop steps) the chosen recipe trains for. */
  stepScale: number;
  /** The chosen full-horizon trial: retraining once on all drops at the end. */
  once: { steps: number; flops: number; wallMs: number; quality: Quality };
  trials: RetrainTrial[];
  /** Every trial's FLOPs, the chosen one included. */
  flops: number;
  /** What the search varied and how it judged. */
  method: string;
}

export interface RetrainSearchOptions {
  config: ModelConfig;
  drops: StreamDrop[];
  base?: StreamDrop;
  initSeed: number;
  /** Retraining's recipe before the search (the base training's, or the per-drop one). */
  recipe: UpdateRecipe;
  /** Steps of the base training that a retrain repeats (0: none). */
  baseSteps: number;
  /** Steps per drop in a retrain (the continual budget in retraining's batch size). */
  dropSteps: number;
  /** Learning rates tried (default: the recipe's /2, x1, x2, x4). */
  learningRates?: number[];
  /** Shares of the default horizon tried (default 0.5 and 1). */
  stepScales?: number[];
  tolerance?: Tolerance;
  seed?: number;
  log?: (line: string) => void;
}

/** Quality of a model on a stream's suites, in the benchmark's terms (means of the final row by metric). */
function qualityOf(config: ModelConfig, weights: Parameters<typeof evaluateSuites>[1], drops: StreamDrop[], base?: StreamDrop): Quality {
  const { suites } = buildSuites(drops, base);
  const values = evaluateSuites(config, weights, suites);
  const by = (metric: 'exactMatch' | 'loss') => {
    const xs = values.filter((_, j) => suites[j]!.metric === metric);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
  };
  return { finalExactMatch: by('exactMatch'), finalLoss: by('loss') };
}

/**
 * Successive halving over retraining's learning rate: rung 0 trains each candidate from scratch on all drops
 * at a quarter of the full horizon (its own cosine schedule), the better half by final quality is trained again
 * at the full horizon (rung 1), and the best of rung 1 is the recipe. Its rung-1 run is the retrain-once model.
 */
export async function searchRetrainRecipe(o: RetrainSearchOptions): Promise<RetrainSearch> {
  const tolerance = o.tolerance ?? DEFAULT_TOLERANCE;
  const k = o.drops.length;
  const full = o.baseSteps + k * o.dropSteps;
  const lr0 = o.recipe.learningRate;
  const floor = (o.recipe.minLearningRate ?? lr0 / 10) / lr0;
  const rates = [...new Set(o.learningRates ?? [lr0 / 2, lr0, lr0 * 2, lr0 * 4])];
  const scales = [...new Set(o.stepScales ?? [0.5, 1])];
  const sources = retrainSources(o.drops, o.base, k, o.baseSteps, o.dropSteps);
  const trials: RetrainTrial[] = [];
  const run = async (lr: number, stepScale: number, steps: number, rung: number) => {
    const warmupSteps = Math.min(o.recipe.warmupSteps, Math.floor(steps / 4));
    const r = await trainModel({
      config: o.config,
      init: initWeights(o.config, o.initSeed),
      sources,
      recipe: { ...o.recipe, learningRate: lr, minLearningRate: lr * floor, warmupSteps, steps, l2Pull: 0, seed: o.seed ?? 1 },
    });
    const quality = qualityOf(o.config, r.weights, o.drops, o.base);
    const trial: RetrainTrial = {
      learningRate: lr,
      stepScale,
      minLearningRate: lr * floor,
      steps,
      rung,
      flops: r.flops,
      wallMs: r.wallMs,
      quality,
      status: 'pruned',
    };
    trials.push(trial);
    o.log?.(
      `retrain search rung ${rung}: lr ${lr}, ${stepScale} of the horizon, ${steps} steps: EM ${quality.finalExactMatch.toFixed(3)}, loss ${quality.finalLoss.toFixed(3)}`,
    );
    return trial;
  };
  const rung0: RetrainTrial[] = [];
  const horizon = (scale: number) => Math.max(1, Math.round(scale * full));
  // Best quality first; at equal quality the cheaper trial.
  const rank = (ts: RetrainTrial[]) => [...ts].sort((a, b) => compareQuality(a.quality, b.quality, tolerance) || a.steps - b.steps);
  for (const scale of scales) for (const lr of rates) rung0.push(await run(lr, scale, Math.max(1, Math.round(horizon(scale) / 4)), 0));
  const kept = rank(rung0).slice(0, Math.max(1, Math.ceil(rung0.length / 2)));
  for (const t of kept) t.status = 'kept';
  const rung1: RetrainTrial[] = [];
  for (const t of kept) rung1.push(await run(t.learningRate, t.stepScale, horizon(t.stepScale), 1));
  const chosen = rank(rung1)[0]!;
  chosen.status = 'chosen';
  for (const t of rung1) if (t !== chosen) t.status = 'kept';
  return {
    recipe: {
      learningRate: chosen.learningRate,
      minLearningRate: chosen.minLearningRate,
      warmupSteps: Math.min(o.recipe.warmupSteps, Math.floor(chosen.steps / 4)),
    },
    stepScale: chosen.stepScale,
    once: { steps: chosen.steps, flops: chosen.flops, wallMs: chosen.wallMs, quality: chosen.quality },
    trials,
    flops: trials.reduce((a, t) => a + t.flops, 0),
    method: `successive halving over retraining's learning rate (${rates.join(', ')}) x share of its ${full}-step horizon (${scales.join(', ')}): ${rung0.length} trials at a quarter of their horizon, the best ${kept.length} at their full horizon, judged on final quality (mean EM over probe suites; within ${tolerance.exactMatch} EM, lower mean loss)`,
  };
}

/** One retraining baseline's cost and quality against the product's strategy. */
export interface BaselineComparison {
  baseline: 'retrain-every' | 'retrain-once';
  /** The baseline's own training FLOPs. */
  flops: number;
  /** flops + the retraining search's FLOPs (retrain-once's run is one of the search's trials, so it is not added twice). */
  chargedFlops: number;
  quality: Quality;
  /** Product FLOPs / baseline FLOPs, without and with the search charged. */
  relativeCompute: number;
  relativeComputeCharged: number;
  /** The product's final quality is within the tolerance of the baseline's, or better, on both metrics. */
  productWithinTolerance: boolean;
  sentence: string;
}

/** The fair-baselines section of the benchmark's output. */
export interface FairBaselines {
  product: string;
  productFlops: number;
  productQuality: Quality;
  tolerance: Tolerance;
  searchFlops: number;
  recipe: RetrainSearch['recipe'];
  stepScale: number;
  method: string;
  trials: RetrainTrial[];
  retrainEvery: BaselineComparison;
  retrainOnce: BaselineComparison;
}

const pct = (x: number) => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;

/**
 * The product against both retraining baselines at equal quality. Pure: `every` is the measured retrain-after-
 * every-drop run (with the searched recipe), `search` the search whose chosen trial is the retrain-once run.
 */
export function fairBaselines(
  product: { strategy: string; flops: number } & Quality,
  every: { flops: number } & Quality,
  search: Pick<RetrainSearch, 'flops' | 'once' | 'recipe' | 'stepScale' | 'method' | 'trials'>,
  tolerance: Tolerance = DEFAULT_TOLERANCE,
): FairBaselines {
  if (!(product.flops > 0) || !(every.flops > 0) || !(search.once.flops > 0)) {
    throw new Error(`fairBaselines: FLOPs must be positive (product ${product.flops}, retrain-every ${every.flops}, retrain-once ${search.once.flops})`);
  }
  if (search.flops < search.once.flops)
    throw new Error(`fairBaselines: the search's FLOPs (${search.flops}) cannot be below its chosen trial's (${search.once.flops})`);
  const compare = (baseline: BaselineComparison['baseline'], flops: number, charged: number, quality: Quality): BaselineComparison => {
    const ok = withinTolerance(product, quality, tolerance);
    const rel = product.flops / flops;
    const relCharged = product.flops / charged;
    const q = `final EM ${product.finalExactMatch.toFixed(3)} vs ${quality.finalExactMatch.toFixed(3)}, final loss ${product.finalLoss.toFixed(3)} vs ${quality.finalLoss.toFixed(3)}`;
    return {
      baseline,
      flops,
      chargedFlops: charged,
      quality,
      relativeCompute: rel,
      relativeComputeCharged: relCharged,
      productWithinTolerance: ok,
      sentence: `${product.strategy} uses ${pct(rel)} of ${baseline}'s compute (${pct(relCharged)} with the retraining search charged) and its final quality is ${ok ? 'within tolerance or better' : 'below tolerance'} (${q})`,
    };
  };
  return {
    product: product.strategy,
    productFlops: product.flops,
    productQuality: { finalExactMatch: product.finalExactMatch, finalLoss: product.finalLoss },
    tolerance,
    searchFlops: search.flops,
    recipe: search.recipe,
    stepScale: search.stepScale,
    method: search.method,
    trials: search.trials,
    retrainEvery: compare('retrain-every', every.flops, every.flops + search.flops, { finalExactMatch: every.finalExactMatch, finalLoss: every.finalLoss }),
    retrainOnce: compare('retrain-once', search.once.flops, search.flops, search.once.quality),
  };
}
