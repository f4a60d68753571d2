/**
 * The comparison: several strategies on the same stream, starting model, seeds and per-drop budget, summarised
 * as one row per strategy, plus the cost of the product's default recipe against retraining from scratch.
 */
import { type RunStreamOptions, type StreamResult, retrainFlops, runStream, streamCache } from './runner.ts';
import type { Strategy } from './strategies.ts';

/** Input of runBenchmark: runStream's, with a list of strategies. */
export interface BenchmarkOptions extends Omit<RunStreamOptions, 'strategy' | 'cache'> {
  strategies: Strategy[];
  /** Name of the strategy whose cost against retraining is the headline (default 'default'). */
  headline?: string;
  /** Quality tolerance for "equal or better": exact-match points and relative loss (default 0.02 and 0.02). */
  tolerance?: { exactMatch: number; loss: number };
}

/** One row of the comparison table. */
export interface StrategySummary {
  strategy: string;
  /** Mean final exact match over the probe suites, and mean final loss over the text suites. */
  finalExactMatch: number;
  finalLoss: number;
  /** Backward transfer (negative = forgetting), exact-match points and nats. */
  bwtExactMatch: number;
  bwtLoss: number;
  /** Forward transfer against an untrained model. */
  fwtExactMatch: number;
  fwtLoss: number;
  /** Largest forgetting of one suite (>= 0 when lost; larger is worse). */
  worstForgettingExactMatch: number;
  worstForgettingLoss: number;
  /** What each update learned about its own drop (signed: positive is learning). */
  newDropGainExactMatch: number;
  newDropGainLoss: number;
  /** Mean exact match of each drop's probes right after its update. */
  justLearnedExactMatch: number;
  /** Gate-style worst regression of one update on an earlier suite: exact-match points, loss relative. */
  worstUpdateRegressionExactMatch: number;
  worstUpdateRegressionLoss: number;
  steps: number;
  tokens: number;
  flops: number;
  wallMs: number;
  /** flops / the FLOPs of retraining from scratch after every drop. */
  relativeCompute: number;
  /** Plasticity ratio of the last version (NaN without a probe). */
  plasticityFinal: number;
  dormantFinal: number;
  weightNormGrowthFinal: number;
  /** Mean over changed answers of the final old-answer rate (NaN when no drop changed an answer). */
  oldAnswerFinal: number;
  oldAnswerAfterUpdate: number;
}

/** The headline: the default recipe's compute against retraining, and whether its quality is at least equal. */
export interface CostVerdict {
  strategy: string;
  relativeCompute: number;
  /** Retraining FLOPs / the strategy's FLOPs. */
  saving: number;
  /** True when the strategy's final quality is within the tolerance of retraining's, or better, on both metrics. */
  qualityAtLeastEqual: boolean;
  sentence: string;
}

/** Output of runBenchmark. */
export interface BenchmarkResult {
  results: StreamResult[];
  summary: StrategySummary[];
  /** FLOPs of retraining after every drop (measured when retrain ran, else computed from the budget). */
  retrainFlops: number;
  cost?: CostVerdict;
}

const meanOr = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/** The table row of one strategy's result. */
export function summarise(r: StreamResult, retrain: number): StrategySummary {
  const em = r.metrics.exactMatch;
  const loss = r.metrics.loss;
  const last = r.plasticity.at(-1);
  const f = (x: number) => (Number.isFinite(x) ? x : Number.NaN);
  return {
    strategy: r.strategy.name,
    finalExactMatch: f(em.averageFinal),
    finalLoss: f(loss.averageFinal),
    bwtExactMatch: f(em.backwardTransfer),
    bwtLoss: f(loss.backwardTransfer),
    fwtExactMatch: f(em.forwardTransfer),
    fwtLoss: f(loss.forwardTransfer),
    worstForgettingExactMatch: f(em.worstForgetting),
    worstForgettingLoss: f(loss.worstForgetting),
    newDropGainExactMatch: f(em.newDropGain),
    newDropGainLoss: f(loss.newDropGain),
    justLearnedExactMatch: f(em.averageJustLearned),
    worstUpdateRegressionExactMatch: em.worstUpdateRegression,
    worstUpdateRegressionLoss: loss.worstUpdateRegression,
    steps: r.total.steps,
    tokens: r.total.tokens,
    flops: r.total.flops,
    wallMs: r.total.wallMs,
    relativeCompute: r.total.flops / retrain,
    plasticityFinal: last?.ratio ?? Number.NaN,
    dormantFinal: last?.dormant.fraction ?? Number.NaN,
    weightNormGrowthFinal: last?.weightNormGrowth ?? Number.NaN,
    oldAnswerFinal: meanOr(r.oldAnswers.map((o) => o.final)),
    oldAnswerAfterUpdate: meanOr(r.oldAnswers.map((o) => o.afterUpdate)),
  };
}

/** Compares `headline` with retraining: relative compute, and whether its final quality is at least equal. */
export function costVerdict(summary: StrategySummary[], headline: string, tolerance = { exactMatch: 0.02, loss: 0.02 }): CostVerdict | undefined {
  const h = summary.find((s) => s.strategy === headline);
  const r = summary.find((s) => s.strategy === 'retrain');
  if (!h) return undefined;
  const saving = 1 / h.relativeCompute;
  if (!r) {
    return {
      strategy: headline,
      relativeCompute: h.relativeCompute,
      saving,
      qualityAtLeastEqual: false,
      sentence: `${headline} uses ${pct(h.relativeCompute)} of the compute of retraining after every drop (retraining was not run, so quality is not compared)`,
    };
  }
  const emOk = !Number.isFinite(r.finalExactMatch) || h.finalExactMatch >= r.finalExactMatch - tolerance.exactMatch;
  const lossOk = !Number.isFinite(r.finalLoss) || h.finalLoss <= r.finalLoss * (1 + tolerance.loss);
  const ok = emOk && lossOk;
  const quality = `final exact match ${h.finalExactMatch.toFixed(3)} vs ${r.finalExactMatch.toFixed(3)}, final loss ${h.finalLoss.toFixed(3)} vs ${r.finalLoss.toFixed(3)}`;
  return {
    strategy: headline,
    relativeCompute: h.relativeCompute,
    saving,
    qualityAtLeastEqual: ok,
    sentence: ok
      ? `${headline} reaches equal or better final quality than retraining (${quality}) at ${pct(h.relativeCompute)} of its compute (${saving.toFixed(1)}x less)`
      : `${headline} costs ${pct(h.relativeCompute)} of retraining's compute (${saving.toFixed(1)}x less) but its final quality is lower (${quality}${emOk ? '' : `; exact match more than ${tolerance.exactMatch} below`}${lossOk ? '' : `; loss more than ${pct(tolerance.loss)} above`})`,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;

/**
 * Runs every strategy on the same stream, starting model, seeds and budget, sharing the untrained baseline
 * and the plasticity reference, and summarises them.
 */
export async function runBenchmark(opts: BenchmarkOptions): Promise<BenchmarkResult> {
  const cache = streamCache();
  const results: StreamResult[] = [];
  for (const strategy of opts.strategies) results.push(await runStream({ ...opts, strategy, cache }));
  return assemble(results, opts);
}

/** Summary and verdict of results computed elsewhere (e.g. in parallel processes). */
export function assemble(results: StreamResult[], opts: Pick<BenchmarkOptions, 'model' | 'recipe' | 'drops' | 'headline' | 'tolerance'>): BenchmarkResult {
  const measured = results.find((r) => r.strategy.kind === 'retrain');
  const base = opts.model.baseTraining;
  const retrain = measured
    ? measured.total.flops
    : retrainFlops(opts.model.config, opts.drops.length, opts.recipe.steps, opts.recipe.batchSize, base && { steps: base.steps, batchSize: base.batchSize });
  const summary = results.map((r) => summarise(r, retrain));
  return { results, summary, retrainFlops: retrain, cost: costVerdict(summary, opts.headline ?? 'default', opts.tolerance) };
}
