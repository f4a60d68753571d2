/**
 * A line's limits where training runs and where drops come in (issue 33): the limits are read from the registry
 * (not from the activity's input, which any Temporal client can write) and a recipe beyond them fails
 * non-retryably as RecipeLimitError, naming each limit.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { flopsPerToken } from '../model/config.ts';
import { type FeedbackCounts, effectiveLimits, limitProblems, rlLimitProblems } from '../domain/recipe-limits.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import type { LineLimits, ModelConfig, Recipe, RecipeOverride, RlRecipeFields, StoredLineLimits } from '../schemas/io.ts';
import type { ActivityDeps } from './deps.ts';

/** Training FLOPs of one sequence (batch 1) of `config`: what the FLOPs limit scales by. */
export const flopsPerSample = (config: ModelConfig) => config.context * flopsPerToken(config);

/** The limits `line` runs under now (those set on it, the rest from its recipe), for a model of `config`. */
export async function lineLimits(deps: Pick<ActivityDeps, 'registry'>, line: string, config?: ModelConfig): Promise<LineLimits> {
  const l = await deps.registry.getLine(line);
  return effectiveLimits(l.limits as StoredLineLimits, l.recipe as unknown as Recipe, flopsPerSample(config ?? (l.modelConfig as unknown as ModelConfig)));
}

/**
 * What a drop's recipe `override`, laid over its line's recipe as a cycle lays it, asks beyond the line's limits.
 * `feedback`: the drop is feedback, and its RL update (the drop's `rl` fields over the line's, key by key, as the
 * cycle lays them) is checked too; with the drop's counts (once read), its FLOPs bound counts the held-out checks.
 */
export async function recipeLimitProblems(
  deps: Pick<ActivityDeps, 'registry'>,
  line: string,
  override: RecipeOverride,
  feedback?: { counts?: FeedbackCounts },
): Promise<string[]> {
  const l = await deps.registry.getLine(line);
  const config = l.modelConfig as unknown as ModelConfig;
  const recipe = { ...(l.recipe as unknown as Recipe), ...override };
  const limits = effectiveLimits(l.limits as StoredLineLimits, l.recipe as unknown as Recipe, flopsPerSample(config));
  const problems = limitProblems(recipe, limits, { flopsPerSample: flopsPerSample(config), override });
  if (!feedback) return problems;
  const rl = { ...(l.recipe as unknown as Recipe).rl, ...override.rl };
  return [...problems, ...rlLimitProblems(rl, limits, { flopsPerSample: flopsPerSample(config), ...feedback })];
}

/**
 * Throws RecipeLimitError (non-retryable) when `recipe`, one training run of `what` on `line` with a model of
 * `config`, breaks the line's limits.
 */
export async function enforceRecipeLimits(
  deps: Pick<ActivityDeps, 'registry'>,
  what: string,
  line: string,
  recipe: Recipe,
  config: ModelConfig,
): Promise<LineLimits> {
  const limits = await lineLimits(deps, line, config);
  const problems = limitProblems(recipe, limits, { flopsPerSample: flopsPerSample(config), search: false });
  if (problems.length)
    throw ApplicationFailure.create({
      message: `${what}: the recipe is outside line ${line}'s limits: ${problems.join('; ')}`,
      type: ErrorType.RecipeLimit,
      nonRetryable: true,
      details: [{ line, problems }],
    });
  return limits;
}

/**
 * Throws RecipeLimitError (non-retryable) when the RL update `rl` of `what` on `line`, with a model of `config` and
 * feedback of `counts`, breaks the line's limits.
 */
export async function enforceRlLimits(
  deps: Pick<ActivityDeps, 'registry'>,
  what: string,
  line: string,
  rl: RlRecipeFields,
  config: ModelConfig,
  counts: FeedbackCounts,
): Promise<LineLimits> {
  const limits = await lineLimits(deps, line, config);
  const problems = rlLimitProblems(rl, limits, { flopsPerSample: flopsPerSample(config), counts });
  if (problems.length)
    throw ApplicationFailure.create({
      message: `${what}: the RL update is outside line ${line}'s limits: ${problems.join('; ')}`,
      type: ErrorType.RecipeLimit,
      nonRetryable: true,
      details: [{ line, problems }],
    });
  return limits;
}
