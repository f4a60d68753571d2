/**
 * The stream runner: trains a starting model through a sequence of drops with one strategy and, after
 * each drop, evaluates every suite of the stream (those seen so far and those still to come), giving the
 * matrix R[i][j]; records the compute of every update, a plasticity probe, dormant MLP units and the weight
 * norm per version, and how often a changed answer is still given the old way.
 */
import { withoutSuperseded } from '../domain/replay.ts';
import { initBackend } from '../model/backend.ts';
import type { ModelConfig } from '../model/config.ts';
import { flopsPerToken } from '../model/config.ts';
import { evaluateLoss, exactMatch, type Probe } from '../model/evaluate.ts';
import { deriveSeed } from '../model/random.ts';
import { type Source, trainModel } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import { type Weights, weightsDigest } from '../model/weights.ts';
import { type MatrixMetrics, type ResultMatrix, matrixMetrics, selectColumns } from './metrics.ts';
import {
  type DormantUnits,
  type PlasticityOptions,
  type ProbeOutcome,
  dormantUnits,
  freshReference,
  plasticityRatio,
  probeLearning,
  weightNorm,
} from './plasticity.ts';
import type { Strategy, UpdateRecipe } from './strategies.ts';
import { type StreamDrop, type Suite, type Supersession, buildSuites } from './stream.ts';

/** The starting model and how to make a fresh one. */
export interface StreamModel {
  config: ModelConfig;
  /** Weights of the starting model: the parent of the first update (a foundation, or a fresh model). */
  start: Weights;
  /** Seed of fresh initialisations: the untrained baseline, retraining, the plasticity reference. */
  initSeed: number;
  /**
   * How the starting model was trained from initWeights(config, initSeed) on the base's training part.
   * Retraining from scratch repeats it: after drop i it trains for baseTraining.steps + i·steps. Absent:
   * the base counts as one more drop's worth of steps (or nothing, when there is no base).
   */
  baseTraining?: UpdateRecipe;
}

/** Input of runStream. */
export interface RunStreamOptions {
  drops: StreamDrop[];
  /** The starting model's own data: its held-out part is suite 0, its training part is replayed and retrained on. */
  base?: StreamDrop;
  model: StreamModel;
  strategy: Strategy;
  /** The per-drop budget shared by every strategy. */
  recipe: UpdateRecipe;
  /** One run per seed (batch order of every update; the stream and the starting model stay fixed). Default [1]. */
  seeds?: number[];
  /** The plasticity probe's budget; absent: no probe. */
  plasticity?: PlasticityOptions;
  /** Shared results (untrained baseline, fresh-model probe, probe of identical weights) across strategies. */
  cache?: StreamCache;
  /**
   * Which replayed records are left out: 'new-drop' (the release loop's rule, `withoutSuperseded` against the
   * new drop's probes) or 'all' (also those any drop since then has superseded). Default 'new-drop'.
   */
  supersede?: 'new-drop' | 'all';
  /** τ of the dormant-unit test (default 0.1). */
  dormantThreshold?: number;
  onEvent?: (event: StreamEvent) => void;
}

/** Progress of a run, for logs and progress bars. */
export interface StreamEvent {
  strategy: string;
  seed: number;
  /** The drop just trained (0: the starting model was evaluated). */
  drop: number;
  drops: number;
  message: string;
}

/** Results shared between runs on the same stream and model, so strategies do not recompute them. */
export interface StreamCache {
  baseline?: number[];
  reference?: ProbeOutcome;
  /** Probe outcomes by weights digest (the starting model is probed once, not once per strategy). */
  probes: Map<string, ProbeOutcome>;
}

/** A new, empty cache. */
export function streamCache(): StreamCache {
  return { probes: new Map() };
}

/** Compute spent on one update. */
export interface DropCompute {
  steps: number;
  /** Token positions trained on: steps · batch · context. */
  tokens: number;
  /** Estimated training FLOPs: tokens · flopsPerToken(config). */
  flops: number;
  wallMs: number;
}

/** Plasticity measurements of one version (row). */
export interface PlasticityPoint {
  /** Exact match / loss the throw-away copy reached on the probe task (NaN without a probe). */
  probe: ProbeOutcome;
  /** probe.exactMatch / fresh model's exact match with the same budget. */
  ratio: number;
  dormant: DormantUnits;
  weightNorm: number;
  /** weightNorm / the starting model's weight norm. */
  weightNormGrowth: number;
}

/** How often a changed answer is still given the old way. */
export interface OldAnswers {
  /** The drop that changed the answers. */
  drop: number;
  prompts: number;
  /** Per row 0..K: exact match of the OLD completions (before `drop` that is the right answer). */
  rateByRow: number[];
  /** Rate right after the changing drop was trained. */
  afterUpdate: number;
  /** Rate after the last drop. */
  final: number;
}

/** Metrics of one run, split by metric (the two are in different units and cannot be averaged together). */
export interface RunMetrics {
  exactMatch: MatrixMetrics;
  loss: MatrixMetrics;
}

/** One seed's run. */
export interface SeedRun {
  seed: number;
  /** matrix[i][j]: suite j after drop i (row 0: the starting model). */
  matrix: number[][];
  /** Per drop 1..K. */
  compute: DropCompute[];
  /** Per row 0..K (empty without a plasticity probe). */
  plasticity: PlasticityPoint[];
  oldAnswers: OldAnswers[];
  metrics: RunMetrics;
}

/** A suite as reported (without its data). */
export interface SuiteInfo {
  name: string;
  kind: 'text' | 'probe';
  metric: 'loss' | 'exactMatch';
  drop: number;
  size: number;
  superseded: number;
}

/** Output of runStream; means over seeds where a field is per seed. */
export interface StreamResult {
  strategy: Strategy;
  recipe: UpdateRecipe;
  suites: SuiteInfo[];
  dropNames: string[];
  seeds: number[];
  /** Mean over seeds of matrix[i][j]. */
  matrix: number[][];
  /** An untrained model's metric per suite (the forward-transfer baseline). */
  baseline: number[];
  /** Mean over seeds of each run's metrics. */
  metrics: RunMetrics;
  /** Mean over seeds, per drop. */
  compute: DropCompute[];
  total: { steps: number; tokens: number; flops: number; wallMs: number };
  /** Mean over seeds, per row (empty without a probe). */
  plasticity: PlasticityPoint[];
  /** The fresh model's probe outcome the ratios divide by. */
  plasticityReference?: ProbeOutcome;
  oldAnswers: OldAnswers[];
  runs: SeedRun[];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/** Element-wise mean of same-shaped values (numbers, arrays, plain objects of them); NaN-free inputs expected. */
function meanOf<T>(items: T[]): T {
  const first = items[0];
  if (typeof first === 'number') return mean(items as number[]) as T;
  if (Array.isArray(first)) return first.map((_, i) => meanOf(items.map((x) => (x as unknown[])[i]))) as T;
  if (first && typeof first === 'object') {
    return Object.fromEntries(Object.keys(first).map((k) => [k, meanOf(items.map((x) => (x as Record<string, unknown>)[k]))])) as T;
  }
  return first as T;
}

/** The matrix bookkeeping of a stream's suites. */
export function resultMatrix(values: number[][], suites: SuiteInfo[]): ResultMatrix {
  return { values, introducedAt: suites.map((s) => s.drop), higherIsBetter: suites.map((s) => s.metric === 'exactMatch') };
}

/** Both metric families of a matrix (exact-match columns and loss columns). */
export function runMetrics(values: number[][], suites: SuiteInfo[], baseline: number[]): RunMetrics {
  const m = resultMatrix(values, suites);
  const pick = (metric: 'loss' | 'exactMatch') => {
    const keep = (j: number) => suites[j]!.metric === metric;
    return matrixMetrics(
      selectColumns(m, keep),
      baseline.filter((_, j) => keep(j)),
    );
  };
  return { exactMatch: pick('exactMatch'), loss: pick('loss') };
}

function withModel<T>(config: ModelConfig, weights: Weights, f: (m: LanguageModel) => T): T {
  const model = LanguageModel.create(config, weights);
  try {
    return f(model);
  } finally {
    model.dispose();
  }
}

/** Metric of every suite for one set of weights. */
export function evaluateSuites(config: ModelConfig, weights: Weights, suites: Suite[]): number[] {
  return withModel(config, weights, (model) =>
    suites.map((s) => (s.kind === 'text' ? evaluateLoss(model, s.texts).meanLoss : exactMatch(model, s.probes).accuracy)),
  );
}

function info(s: Suite): SuiteInfo {
  return { name: s.name, kind: s.kind, metric: s.metric, drop: s.drop, size: s.kind === 'text' ? s.texts.length : s.probes.length, superseded: s.superseded };
}

/** Training sources of update i (1-based) for a continuing strategy. */
export function continueSources(drops: StreamDrop[], base: StreamDrop | undefined, i: number, strategy: Strategy, supersede: 'new-drop' | 'all'): Source[] {
  const drop = drops[i - 1]!;
  const newer = (d: number) => drops.slice(d, i).flatMap((x) => x.probes); // probes of drops d+1..i
  const replay: { name: string; docs: string[] }[] = [];
  if (strategy.replayRatio > 0) {
    // The release loop's replay buffer (activities/train.ts): earlier drops newest first, then the base; each
    // filtered with withoutSuperseded against the new drop's probes, then cut to what is left of the budget.
    const earlier: { docs: string[]; index: number }[] = [];
    for (let d = i - 1; d >= 1; d--) earlier.push({ docs: drops[d - 1]!.train, index: d });
    if (base) earlier.push({ docs: base.train, index: 0 });
    let budget = strategy.replayBudget;
    for (const e of earlier) {
      if (budget <= 0) break;
      let docs = withoutSuperseded(e.docs, drop.probes);
      if (supersede === 'all') docs = withoutSuperseded(docs, newer(e.index));
      docs = docs.slice(0, budget);
      budget -= docs.length;
      if (docs.length) replay.push({ name: e.index === 0 ? 'replay-base' : `replay-${e.index}`, docs });
    }
  }
  const ratio = replay.length ? strategy.replayRatio : 0;
  const sources: Source[] = [{ name: 'drop', weight: 1 - ratio, docs: drop.train }];
  if (ratio > 0 && strategy.replayMix === 'pooled') sources.push({ name: 'replay', weight: ratio, docs: replay.flatMap((r) => r.docs) });
  else if (ratio > 0) for (const r of replay) sources.push({ name: r.name, weight: ratio / replay.length, docs: r.docs });
  return sources;
}

/**
 * Training sources of a retrain after drop i: the base and every drop so far, each weighted by the steps
 * it gets in the continual stream (so each record is seen about as often), with records that a later drop
 * superseded left out (a rebuild trains on the current truth).
 */
export function retrainSources(drops: StreamDrop[], base: StreamDrop | undefined, i: number, baseSteps: number, steps: number): Source[] {
  const sources: Source[] = [];
  if (base && base.train.length) sources.push({ name: 'base', weight: baseSteps > 0 ? baseSteps : steps, docs: base.train });
  for (let d = 1; d <= i; d++) {
    const later = drops.slice(d, i).flatMap((x) => x.probes);
    sources.push({ name: `drop-${d}`, weight: steps, docs: withoutSuperseded(drops[d - 1]!.train, later) });
  }
  return sources;
}

/**
 * Runs one strategy through the stream, once per seed, and returns the matrix, its metrics, the compute per
 * drop, the plasticity series and the old-answer rates. Deterministic for a given backend.
 */
export async function runStream(opts: RunStreamOptions): Promise<StreamResult> {
  // Before any tensor exists: evaluation would otherwise start on tfjs's default backend.
  await initBackend();
  const { drops, base, model, strategy } = opts;
  const seeds = opts.seeds ?? [1];
  const supersede = opts.supersede ?? 'new-drop';
  const recipe = { ...opts.recipe, ...strategy.recipe };
  const cache = opts.cache ?? streamCache();
  const { config } = model;
  if (drops.length === 0) throw new Error('runStream: the stream has no drops');
  drops.forEach((d) => {
    if (d.train.length === 0) throw new Error(`runStream: drop ${d.name} has no training records (only held-out text or probes)`);
  });
  const { suites, supersessions } = buildSuites(drops, base);
  const infos = suites.map(info);
  cache.baseline ??= evaluateSuites(config, initWeights(config, model.initSeed), suites);
  const baseline = cache.baseline;
  if (opts.plasticity) cache.reference ??= await freshReference(config, model.initSeed, opts.plasticity);
  // Dormancy is measured on the same inputs for every version: the stream's held-out text.
  const dormantDocs = [...(base?.heldOut ?? []), ...drops.flatMap((d) => d.heldOut)].slice(0, 64);
  const startNorm = weightNorm(model.start);
  const baseSteps = model.baseTraining?.steps ?? 0;

  const measure = async (weights: Weights): Promise<{ values: number[]; old: number[]; point?: PlasticityPoint }> => {
    const values = evaluateSuites(config, weights, suites);
    const { old, dormant } = withModel(config, weights, (m) => ({
      old: supersessions.map((s) => exactMatch(m, s.oldAnswers).accuracy),
      dormant: dormantUnits(m, dormantDocs.length ? dormantDocs : drops.flatMap((d) => d.train).slice(0, 64), opts.dormantThreshold),
    }));
    if (!opts.plasticity) return { values, old };
    const digest = weightsDigest(weights);
    let probe = cache.probes.get(digest);
    if (!probe) {
      probe = await probeLearning(config, weights, opts.plasticity);
      cache.probes.set(digest, probe);
    }
    const norm = weightNorm(weights);
    return {
      values,
      old,
      point: { probe, ratio: plasticityRatio(probe, cache.reference!), dormant, weightNorm: norm, weightNormGrowth: norm / startNorm },
    };
  };

  const runs: SeedRun[] = [];
  for (const seed of seeds) {
    const event = (drop: number, message: string) => opts.onEvent?.({ strategy: strategy.name, seed, drop, drops: drops.length, message });
    const matrix: number[][] = [];
    const compute: DropCompute[] = [];
    const plasticity: PlasticityPoint[] = [];
    const oldRows: number[][] = [];
    const record = (m: Awaited<ReturnType<typeof measure>>) => {
      matrix.push(m.values);
      oldRows.push(m.old);
      if (m.point) plasticity.push(m.point);
    };
    record(await measure(model.start));
    event(0, 'evaluated the starting model');
    let current = model.start;
    for (let i = 1; i <= drops.length; i++) {
      const dropSeed = deriveSeed(seed, i);
      // Retraining sees each drop for as many tokens as a continuing strategy does (its batch may differ).
      const retrainDropSteps = Math.round((recipe.steps * recipe.batchSize) / (model.baseTraining ?? recipe).batchSize);
      const result =
        strategy.kind === 'retrain'
          ? await trainModel({
              config,
              init: initWeights(config, model.initSeed),
              sources: retrainSources(drops, base, i, baseSteps, retrainDropSteps),
              recipe: {
                // The strategy's own recipe (e.g. the searched learning rate of bench/fair.ts) over the base training's.
                ...(model.baseTraining ?? recipe),
                ...strategy.recipe,
                steps: Math.max(1, Math.round((strategy.retrainStepScale ?? 1) * (baseSteps + i * retrainDropSteps))),
                l2Pull: 0,
                seed: dropSeed,
              },
            })
          : await trainModel({
              config,
              init: current,
              reference: strategy.l2Pull > 0 ? current : undefined,
              sources: continueSources(drops, base, i, strategy, supersede),
              recipe: { ...recipe, l2Pull: strategy.l2Pull, rewarm: strategy.rewarm, seed: dropSeed },
            });
      current = result.weights;
      compute.push({ steps: result.steps, tokens: result.tokens, flops: result.flops, wallMs: result.wallMs });
      const m = await measure(current);
      record(m);
      const own = suites.map((s, j) => (s.drop === i ? `${s.kind === 'probe' ? 'EM' : 'loss'} ${m.values[j]!.toFixed(3)}` : '')).filter(Boolean);
      event(i, `${drops[i - 1]!.name}: ${result.steps} steps in ${(result.wallMs / 1000).toFixed(1)} s${own.length ? `, ${own.join(', ')}` : ''}`);
    }
    const k = drops.length;
    const oldAnswers = supersessions.map((s, n) => {
      const rateByRow = oldRows.map((r) => r[n]!);
      return { drop: s.drop, prompts: s.oldAnswers.length, rateByRow, afterUpdate: rateByRow[s.drop]!, final: rateByRow[k]! };
    });
    runs.push({ seed, matrix, compute, plasticity, oldAnswers, metrics: runMetrics(matrix, infos, baseline) });
  }

  const computeMean = meanOf(runs.map((r) => r.compute));
  const sum = (f: (c: DropCompute) => number) => computeMean.reduce((a, c) => a + f(c), 0);
  return {
    strategy,
    recipe,
    suites: infos,
    dropNames: drops.map((d) => d.name),
    seeds,
    matrix: meanOf(runs.map((r) => r.matrix)),
    baseline,
    metrics: meanOf(runs.map((r) => r.metrics)),
    compute: computeMean,
    total: { steps: sum((c) => c.steps), tokens: sum((c) => c.tokens), flops: sum((c) => c.flops), wallMs: sum((c) => c.wallMs) },
    plasticity: meanOf(runs.map((r) => r.plasticity)),
    plasticityReference: cache.reference,
    oldAnswers: meanOf(runs.map((r) => r.oldAnswers)),
    runs,
  };
}

/** Training FLOPs of retraining from scratch after every drop of a K-drop stream (what `retrain` spends). */
export function retrainFlops(config: ModelConfig, k: number, steps: number, batchSize: number, base?: { steps: number; batchSize: number }): number {
  const b = base?.batchSize ?? batchSize;
  const dropSteps = Math.round((steps * batchSize) / b);
  let tokens = 0;
  for (let i = 1; i <= k; i++) tokens += ((base?.steps ?? 0) + i * dropSteps) * b * config.context;
  return tokens * flopsPerToken(config);
}

/** Old-answer probes as a helper for callers with their own loop: EM of the replaced completions. */
export function oldAnswerRate(config: ModelConfig, weights: Weights, oldAnswers: Probe[]): number {
  return withModel(config, weights, (m) => exactMatch(m, oldAnswers).accuracy);
}

export type { Supersession };

/**
 * The result of the first `k` drops of a longer run: rows 0..k, the suites of the base and drops 1..k, their
 * compute, plasticity and old answers, with the metrics recomputed. Equal to running the k-drop stream itself
 * when no drop after k changes an answer of drops 1..k (checked: the kept suites must not lose probes to them).
 */
export function truncateResult(r: StreamResult, k: number, drops: StreamDrop[], base?: StreamDrop): StreamResult {
  if (!Number.isInteger(k) || k < 1 || k > r.dropNames.length) throw new Error(`truncateResult: k must be 1..${r.dropNames.length}, got ${k}`);
  const { suites } = buildSuites(drops.slice(0, k), base);
  const keep = r.suites.map((s, j) => (s.drop <= k ? j : -1)).filter((j) => j >= 0);
  const kept = keep.map((j) => r.suites[j]!);
  if (kept.length !== suites.length || kept.some((s, n) => s.name !== suites[n]!.name || s.size !== info(suites[n]!).size)) {
    throw new Error(`truncateResult: a drop after ${k} changes the suites of drops 1..${k}; run the ${k}-drop stream itself`);
  }
  const cut = (m: number[][]) => m.slice(0, k + 1).map((row) => keep.map((j) => row[j]!));
  const baseline = keep.map((j) => r.baseline[j]!);
  const runs = r.runs.map((run) => {
    const matrix = cut(run.matrix);
    return {
      seed: run.seed,
      matrix,
      compute: run.compute.slice(0, k),
      plasticity: run.plasticity.slice(0, k + 1),
      oldAnswers: run.oldAnswers.filter((o) => o.drop <= k).map((o) => ({ ...o, rateByRow: o.rateByRow.slice(0, k + 1), final: o.rateByRow[k]! })),
      metrics: runMetrics(matrix, kept, baseline),
    };
  });
  const compute = r.compute.slice(0, k);
  const sum = (f: (c: DropCompute) => number) => compute.reduce((a, c) => a + f(c), 0);
  return {
    ...r,
    suites: kept,
    dropNames: r.dropNames.slice(0, k),
    matrix: cut(r.matrix),
    baseline,
    metrics: meanOf(runs.map((x) => x.metrics)),
    compute,
    total: { steps: sum((c) => c.steps), tokens: sum((c) => c.tokens), flops: sum((c) => c.flops), wallMs: sum((c) => c.wallMs) },
    plasticity: r.plasticity.slice(0, k + 1),
    oldAnswers: meanOf(runs.map((x) => x.oldAnswers)),
    runs,
  };
}
