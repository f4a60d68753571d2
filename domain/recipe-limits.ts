/**
 * A line's limits on what one cycle may spend (issue 33): their defaults, derived from the line's recipe and the
 * default recipe (schemas/defaults.ts), and the check of a recipe against them, which names each limit it breaks.
 * Pure: the registry checks a line's own recipe with it, ingest a drop's override, the training activities what
 * they are asked to train.
 */
import { DEFAULT_RECIPE, DEFAULT_RL } from '../schemas/defaults.ts';
import type { LineLimits, Recipe, RecipeOverride, RlRecipeFields, StoredLineLimits } from '../schemas/io.ts';
import { SEARCH_BUDGET } from './recipe-search.ts';

/** The recipe fields the defaults are derived from. */
type Scale = Pick<Recipe, 'steps' | 'batchSize' | 'replayBudget' | 'rl'>;

/**
 * The default limits of a line that trains `recipe`, scaled from the larger of it and DEFAULT_RECIPE (its RL update
 * from the larger of its `rl` and DEFAULT_RL), so a line with a tiny test recipe still takes ordinary drops. `flopsPerSample` (one sequence's training FLOPs, batch 1) is
 * what FLOPs need; without it the FLOPs limit is left open (Infinity) and only the other limits hold.
 */
export function defaultLimits(recipe: Scale, flopsPerSample?: number): LineLimits {
  const steps = Math.max(recipe.steps, DEFAULT_RECIPE.steps);
  const batch = Math.max(recipe.batchSize, DEFAULT_RECIPE.batchSize);
  const rl = { ...DEFAULT_RL, ...recipe.rl };
  return {
    // 10x the line's steps: a drop that needs longer gets it, and a transfer's TRANSFER_STEPS_FACTOR (4x) fits.
    maxSteps: 10 * steps,
    // 4x the line's batch (64 at the default 16): more only spends memory and FLOPs a small drop cannot use.
    maxBatchSize: Math.min(1024, 4 * batch),
    // 16x the line's training FLOPs: a transfer (4x), or a search at its default budget over 10x the steps (15x).
    maxFlopsPerCycle: flopsPerSample === undefined ? Number.POSITIVE_INFINITY : 16 * steps * batch * flopsPerSample,
    // The newest checkpoint is what a retry resumes from; two more cover a retry whose (throttled) heartbeat names an older one.
    keepCheckpoints: 3,
    // 5x as often as the default recipe's 50 steps at most: every step would write the optimiser state each step.
    minCheckpointEvery: Math.max(1, Math.floor(DEFAULT_RECIPE.checkpointEvery / 5)),
    // 10x the line's replay budget: replay records are held in memory by the worker for the whole run.
    maxReplayBudget: 10 * Math.max(recipe.replayBudget, DEFAULT_RECIPE.replayBudget),
    // 10x the RL update's steps (200 at the default 20), as for training: its FLOPs are held to maxFlopsPerCycle too.
    maxRlSteps: 10 * Math.max(rl.steps, DEFAULT_RL.steps),
    // 4x the answers sampled a step (128 at the default 4 prompts x 8), as for the batch: each is sampled token by token.
    maxRlSamplesPerStep: 4 * Math.max(rl.promptsPerStep * rl.samplesPerPrompt, DEFAULT_RL.promptsPerStep * DEFAULT_RL.samplesPerPrompt),
    // 8x the default 6-token answers (48): sampling re-runs the whole sequence for every new token.
    maxRlTokens: Math.min(256, 8 * Math.max(rl.maxTokens, DEFAULT_RL.maxTokens)),
  };
}

/** The limits a line runs under: those set on it, the rest its defaults. */
export function effectiveLimits(stored: StoredLineLimits | undefined, recipe: Scale, flopsPerSample?: number): LineLimits {
  return { ...defaultLimits(recipe, flopsPerSample), ...stripUndefined(stored ?? {}) };
}

/** The training FLOPs one cycle of `recipe` spends: its training or, with `search`, its search's whole budget. */
export function cycleFlops(recipe: Pick<Recipe, 'steps' | 'batchSize' | 'search'>, flopsPerSample: number): number {
  const run = recipe.steps * recipe.batchSize * flopsPerSample;
  if (!recipe.search) return run;
  return recipe.search.budgetFlops ?? (recipe.search.budgetFactor ?? SEARCH_BUDGET) * run;
}

/**
 * What in `recipe` breaks `limits`, one sentence per limit naming it and the value asked (empty: within them).
 * `override` (a drop's fields) adds the rule that a drop's warmup is at most its steps. Without `flopsPerSample`
 * the FLOPs limit is not checked. `search: false` checks one training run (a search trial's), not a search budget.
 */
export function limitProblems(
  recipe: Pick<Recipe, 'steps' | 'batchSize' | 'checkpointEvery' | 'replayBudget' | 'warmupSteps' | 'search'>,
  limits: LineLimits,
  opts: { flopsPerSample?: number; override?: RecipeOverride; search?: boolean } = {},
): string[] {
  const out: string[] = [];
  if (recipe.steps > limits.maxSteps) out.push(`steps ${recipe.steps} is over the line's limit maxSteps ${limits.maxSteps}`);
  if (recipe.batchSize > limits.maxBatchSize) out.push(`batchSize ${recipe.batchSize} is over the line's limit maxBatchSize ${limits.maxBatchSize}`);
  // checkpointEvery 0 means none (the trainer's convention), which costs nothing.
  if (recipe.checkpointEvery > 0 && recipe.checkpointEvery < limits.minCheckpointEvery)
    out.push(`checkpointEvery ${recipe.checkpointEvery} is under the line's limit minCheckpointEvery ${limits.minCheckpointEvery}`);
  if (recipe.replayBudget > limits.maxReplayBudget)
    out.push(`replayBudget ${recipe.replayBudget} is over the line's limit maxReplayBudget ${limits.maxReplayBudget}`);
  if (opts.override?.warmupSteps !== undefined && opts.override.warmupSteps > recipe.steps)
    out.push(`warmupSteps ${opts.override.warmupSteps} is over the drop's steps ${recipe.steps}`);
  if (opts.flopsPerSample !== undefined) {
    const r = opts.search === false ? { ...recipe, search: undefined } : recipe;
    const flops = cycleFlops(r, opts.flopsPerSample);
    if (flops > limits.maxFlopsPerCycle)
      out.push(
        `${r.search ? 'the search budget of' : `${r.steps} steps x batch ${r.batchSize} =`} ${flops.toExponential(2)} training FLOPs is over the line's limit maxFlopsPerCycle ${limits.maxFlopsPerCycle.toExponential(2)}`,
      );
  }
  return out;
}

/** What a feedback drop holds, as far as what its RL update spends goes (domain/feedback.ts Feedback, counted). */
export interface FeedbackCounts {
  prompts: number;
  ratings: number;
  heldOutPrompts: number;
  heldOutRatings: number;
}

/**
 * At most the FLOPs of the RL update `rl`, in training FLOPs of one sequence (`flopsPerSample`), counted as model/rl.ts
 * counts what it spent (a forward pass a third of a training pass; sampling re-runs the sequence for each new token;
 * the reference's two passes, the update, replay and every held-out check), each pass at the full context as prompt
 * lengths are not known up front. Without `counts`, what every step costs with its groups full and no checks (a drop
 * not yet read): less than the bound with them, so what it refuses the bound refuses too.
 */
export function rlFlops(rl: RlRecipeFields, flopsPerSample: number, counts?: FeedbackCounts): number {
  const r = { ...DEFAULT_RL, ...rl };
  const groups = Math.min(r.promptsPerStep, counts?.prompts ?? r.promptsPerStep);
  const offline = Math.min(2 * r.promptsPerStep, counts?.ratings ?? 0);
  const rows = groups * r.samplesPerPrompt + offline;
  const replay = r.replayWeight > 0 ? r.replayBatch : 0;
  // Per step: a forward pass per sampled token, the reference's log-probs and logits, the update and replay.
  const step = (groups * r.samplesPerPrompt * r.maxTokens + 2 * rows) / 3 + rows + replay;
  // The check at step 0, one every checkEvery steps and one at the end: greedy answers, the KL (two passes), ratings (two).
  const checks = counts ? 1 + Math.ceil(r.steps / r.checkEvery) : 0;
  const check = counts ? (counts.heldOutPrompts * (r.maxTokens + 2) + 2 * counts.heldOutRatings) / 3 : 0;
  return (r.steps * step + checks * check) * flopsPerSample;
}

/**
 * What in the RL update `rl` (DEFAULT_RL under the fields set) breaks `limits`, one sentence per limit naming it and
 * the value asked (empty: within them). Without `flopsPerSample` the FLOPs limit is not checked.
 */
export function rlLimitProblems(rl: RlRecipeFields, limits: LineLimits, opts: { flopsPerSample?: number; counts?: FeedbackCounts } = {}): string[] {
  const r = { ...DEFAULT_RL, ...rl };
  const out: string[] = [];
  if (r.steps > limits.maxRlSteps) out.push(`rl.steps ${r.steps} is over the line's limit maxRlSteps ${limits.maxRlSteps}`);
  const samples = r.promptsPerStep * r.samplesPerPrompt;
  if (samples > limits.maxRlSamplesPerStep)
    out.push(
      `rl.promptsPerStep ${r.promptsPerStep} x rl.samplesPerPrompt ${r.samplesPerPrompt} = ${samples} samples a step is over the line's limit maxRlSamplesPerStep ${limits.maxRlSamplesPerStep}`,
    );
  if (r.maxTokens > limits.maxRlTokens) out.push(`rl.maxTokens ${r.maxTokens} is over the line's limit maxRlTokens ${limits.maxRlTokens}`);
  if (opts.flopsPerSample !== undefined) {
    const flops = rlFlops(r, opts.flopsPerSample, opts.counts);
    if (flops > limits.maxFlopsPerCycle)
      out.push(
        `the RL update of ${r.steps} steps x ${samples} samples of up to ${r.maxTokens} tokens = up to ${flops.toExponential(2)} FLOPs is over the line's limit maxFlopsPerCycle ${limits.maxFlopsPerCycle.toExponential(2)}`,
      );
  }
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}
