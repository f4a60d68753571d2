/** The embedded defaults: the default recipe, gate rules and promotion policy (model presets: model/config.ts). Pure data. */
import type { GateRules, PromotionPolicy, Recipe, RlRecipeFields } from './io.ts';

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

/**
 * A feedback cycle's RL update where neither the line's recipe nor the drop's `rl` sets a field (model/rl.ts
 * RL_DEFAULTS is this less its steps): 20 steps of 4 prompts x 8 samples of at most 6 tokens.
 */
export const DEFAULT_RL: Required<RlRecipeFields> = {
  steps: 20,
  promptsPerStep: 4,
  samplesPerPrompt: 8,
  maxTokens: 6,
  learningRate: 1e-3,
  klCoef: 0.05,
  klBudget: 0.5,
  clip: 0.2,
  replayWeight: 0.5,
  replayBatch: 4,
  checkEvery: 5,
};

/**
 * A foundation line learns its language from its drops, so its default budget grows with its model. The 200
 * steps above (16 x 64 tokens on `small`: 1.7 tokens per parameter) leave `base` (3.3M parameters, 16 x 256 tokens
 * a step: 0.8M tokens) on a byte-bigram plateau on real prose (bench:prose: 3.41 bits per byte against xz -9's
 * 2.64); 1,200 steps (4.9M tokens, 1.5 per parameter) bring it to 2.21, below xz -9 (README, bench:prose). An application
 * line adapts a trained foundation to a small drop and keeps the 200.
 */
export const FOUNDATION_STEPS: Readonly<Record<string, number>> = { base: 1200 };

/** The default recipe of a new line of `kind` whose model is the preset named `preset`. */
export function defaultRecipe(kind: 'foundation' | 'application', preset: string): Recipe {
  const steps = kind === 'foundation' ? FOUNDATION_STEPS[preset] : undefined;
  return steps === undefined ? DEFAULT_RECIPE : { ...DEFAULT_RECIPE, steps };
}

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
