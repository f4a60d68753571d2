/** The embedded defaults: the default recipe, gate rules and promotion policy (model presets: model/config.ts). Pure data. */
import type { GateRules, PromotionPolicy, Recipe } from './io.ts';

/** Replay + L2 pull toward the parent + learning-rate re-warming: the product's default update recipe. */
export const DEFAULT_RECIPE: Recipe = {
  steps: 200,
  batchSize: 16,
  learningRate: 3e-3,
  minLearningRate: 3e-4,
  warmupSteps: 20,
  rewarm: true,
  weightDecay: 0.01,
  gradClip: 1,
  l2Pull: 1e-3,
  replayRatio: 0.3,
  replayBudget: 5000,
  seed: 1,
  checkpointEvery: 50,
};

export const DEFAULT_GATE_RULES: GateRules = {
  floors: { loss: 6, exactMatch: 0 },
  maxRegression: { loss: 0.05, exactMatch: 0.1 },
  minImprovement: { loss: 0.02, exactMatch: 0 },
  suites: {},
};

export const DEFAULT_PROMOTION: PromotionPolicy = {
  canaryWindow: '0s',
  requireApproval: false,
  approvalTimeout: '7d',
};

/**
 * A transfer trains this many times the line's `steps` unless its `recipe.transfer.steps` says otherwise: it
 * re-learns from the replay buffer what all the line's drops taught, and one drop's budget loses what it cannot
 * revisit (bench:upgrade --quick: at 1x min inheritance 0.40 and 37.5% flipped probes, at 2x 1.20 and 25%, at 4x
 * 1.29 and none).
 */
export const TRANSFER_STEPS_FACTOR = 4;
