/**
 * Update strategies compared by the stream benchmark. All of them get the same per-drop budget (steps,
 * batch, learning rate, warmup, seeds) from one UpdateRecipe; they differ only in what they train on and
 * how they are held back. Retraining from scratch is the exception by design: it is the cost the product
 * exists to avoid, so it pays for the base training again plus every drop so far.
 */
import type { Recipe as ProductRecipe } from '../schemas/io.ts';

/** The per-drop training budget every continuing strategy shares. */
export interface UpdateRecipe {
  steps: number;
  batchSize: number;
  learningRate: number;
  /** Floor of the cosine decay (default learningRate / 10). */
  minLearningRate?: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
}

/** How a strategy turns the previous version and the new drop into the next version. */
export interface Strategy {
  name: string;
  /** continue: train the previous version on the new drop (plus replay); retrain: a fresh model on all data so far. */
  kind: 'continue' | 'retrain';
  /** Share of each batch drawn from the replay buffer (earlier drops, newest first, then the base). */
  replayRatio: number;
  /** Most records in the replay buffer. */
  replayBudget: number;
  /**
   * How the replay share is spread: 'balanced' (each earlier drop and the base is a source of its own with an
   * equal part of the share, as activities/train.ts does now) or 'pooled' (one source of all replayed records,
   * as it did before: each record equally likely, so a large base drowns a line's small fact drops).
   * Default 'balanced'.
   */
  replayMix?: 'pooled' | 'balanced';
  /** L2 pull toward the previous version's weights (0: off). */
  l2Pull: number;
  /** Warm the learning rate up from its floor rather than from 0 (the previous run ended at the floor). */
  rewarm: boolean;
  /** Retraining only: the share of the default retraining horizon (base steps + i · drop steps) it trains for (default 1). */
  retrainStepScale?: number;
  /** This strategy's own changes to the shared recipe (rarely needed: they break equal budgets). */
  recipe?: Partial<UpdateRecipe>;
}

/** The names of the built-in strategies, in table order. */
export const STRATEGY_NAMES = ['naive', 'replay', 'default', 'retrain'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

/** The knobs the replay and default strategies take from a recipe. */
export interface RecipeKnobs {
  replayRatio: number;
  replayBudget: number;
  l2Pull: number;
  /** Default 'balanced'. */
  replayMix?: 'pooled' | 'balanced';
}

/**
 * The four built-in strategies: naive continued fine-tuning; replay (a replay buffer mixed in at the
 * recipe's ratio); default (replay + L2 pull toward the previous version + learning-rate re-warming, the
 * product's default recipe); retrain (from scratch on all data so far after each drop).
 */
export function standardStrategies(knobs: RecipeKnobs): Record<StrategyName, Strategy> {
  const { replayRatio, replayBudget, l2Pull } = knobs;
  const replayMix = knobs.replayMix ?? 'balanced';
  return {
    naive: { name: 'naive', kind: 'continue', replayRatio: 0, replayBudget: 0, l2Pull: 0, rewarm: false },
    replay: { name: 'replay', kind: 'continue', replayRatio, replayBudget, replayMix, l2Pull: 0, rewarm: false },
    default: { name: 'default', kind: 'continue', replayRatio, replayBudget, replayMix, l2Pull, rewarm: true },
    retrain: { name: 'retrain', kind: 'retrain', replayRatio: 0, replayBudget: 0, l2Pull: 0, rewarm: false },
  };
}

/** Splits a product recipe (schemas/io.ts, e.g. DEFAULT_RECIPE) into the shared budget and the strategy knobs. */
export function fromProductRecipe(r: ProductRecipe): { recipe: UpdateRecipe; knobs: RecipeKnobs } {
  return {
    recipe: {
      steps: r.steps,
      batchSize: r.batchSize,
      learningRate: r.learningRate,
      minLearningRate: r.minLearningRate,
      warmupSteps: r.warmupSteps,
      weightDecay: r.weightDecay,
      gradClip: r.gradClip,
    },
    knobs: { replayRatio: r.replayRatio, replayBudget: r.replayBudget, l2Pull: r.l2Pull },
  };
}
