/**
 * The recipe search of one cycle (`<cycle id>:search`, issue 15): a child workflow that runs short trials on the
 * training queue (each one an activity in this workflow's history, so the Temporal UI lists every trial), judges
 * each with the release gate on the line's suites, and returns the cheapest recipe that passes with the margin,
 * or the best trial's numbers when none does within the budget. The plan (domain/recipe-search.ts) is pure.
 */
import { ActivityFailure, patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { LocalRegistryActivities, SuiteRef, TrainingQueueActivities, VersionRef } from '../activities/types.ts';
import type { GateRules, ModelConfig, Recipe } from '../schemas/io.ts';
import type { Metrics } from '../schemas/contracts/gate.ts';
import {
  type DropFeatures,
  type Knobs,
  type TrialOutcome,
  SEARCH_BUDGET,
  SEARCH_BUDGET_BEFORE,
  STOP_EARLY,
  dropDistance,
  judgedOf,
  searchRecipe,
} from '../domain/recipe-search.ts';
import { evaluateGate } from './gate.ts';
import { evaluation, registryLocal, training } from './options.ts';

export interface RecipeSearchInput {
  line: string;
  /** The cycle's key: trials are keyed under it, and it is the key of the training run of the version it makes. */
  cycleKey: string;
  cycleId: string;
  dropDigest: string;
  init: VersionRef | null;
  champion: number | null;
  foundationStable: VersionRef | null;
  replay: string[];
  /** The effective recipe with its `search` settings: the search starts from its fields. */
  recipe: Recipe;
  modelConfig: ModelConfig;
  gateRules: GateRules;
  suites: SuiteRef[];
  newSuites: string[];
  features: DropFeatures;
  trainingQueue: string;
}

export interface RecipeSearchResult {
  /** The chosen recipe (without `search`) and its final checkpoint, which the candidate resumes from. */
  chosen: { recipe: Recipe; checkpoint: string; margin: number } | null;
  best: { trial: string; recipe: Recipe; steps: number; margin: number | null; summary: string } | null;
  trials: number;
  flops: number;
  budgetFlops: number;
  reason: string;
}

const knobsOf = (r: Partial<Recipe>, fallback: Recipe): Knobs => ({
  steps: r.steps ?? fallback.steps,
  learningRate: r.learningRate ?? fallback.learningRate,
  minLearningRate: r.minLearningRate ?? fallback.minLearningRate,
  warmupSteps: r.warmupSteps ?? fallback.warmupSteps,
  replayRatio: r.replayRatio ?? fallback.replayRatio,
  l2Pull: r.l2Pull ?? fallback.l2Pull,
});

/** Searches the cheapest passing recipe for one drop; records every trial; never fails on a failed trial. */
export async function recipeSearchWorkflow(input: RecipeSearchInput): Promise<RecipeSearchResult> {
  const started = Date.now();
  const light = proxyLocalActivities<LocalRegistryActivities>(registryLocal);
  const evals = proxyActivities<TrainingQueueActivities>(evaluation(input.trainingQueue));
  // A trial that keeps crashing is dropped after three tries; the search goes on with the others.
  const trials = proxyActivities<TrainingQueueActivities>({
    ...training(input.trainingQueue),
    retry: { ...training(input.trainingQueue).retry, maximumAttempts: 3 },
  });
  const { search, distillTemperature: _t, distillWeight: _w, ...base } = input.recipe;
  void _t;
  void _w;
  const settings = search ?? {};
  const context = await light.recipeSearchContext({ line: input.line, modelConfig: input.modelConfig, batchSize: base.batchSize });
  // Searches started before the default budget was SEARCH_BUDGET keep the one they ran with.
  const factor = settings.budgetFactor ?? (patched('search-budget-default-v1') ? SEARCH_BUDGET : SEARCH_BUDGET_BEFORE);
  const budgetFlops = settings.budgetFlops ?? factor * base.steps * context.flopsPerStep;

  // What the candidate is judged against: the champion, or for a first version what it replaces.
  const against = await againstMetrics();
  const suites = input.suites.map((s) => ({ name: s.name, kind: s.kind, isNew: input.newSuites.includes(s.name) }));
  const history = [...context.history]
    .map((h, i) => ({ h, i, d: dropDistance(input.features, h.features as unknown as DropFeatures) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map(({ h }) => knobsOf(h.recipe as Partial<Recipe>, base));
  const recipeOf = (k: Knobs): Recipe => ({ ...base, ...k });

  // Searches started before the base recipe was taken on a plain pass keep the plan they ran with.
  const baseOnPass = patched('search-base-on-pass-v1');
  // Searches started before trials were judged on their way (and hopeless ones stopped) keep the plan they ran with.
  const stopEarly = patched('search-stop-early-v1') && settings.stopEarly !== false;
  // The gate judges the candidate's plasticity: a trial at its horizon (a possible candidate) is measured and judged
  // on it, one on its way is judged without that rule (its weights are not what the gate will see). Searches started
  // before trials carried a plasticity figure keep the plan they ran with (every trial failed the rule then).
  const judgesPlasticity = input.gateRules.minPlasticity !== undefined && patched('search-plasticity-v1');
  const { minPlasticity: _floor, ...onTheWay } = input.gateRules;
  void _floor;
  const outcome = await searchRecipe({
    base: knobsOf(base, base),
    history,
    budgetFlops,
    flopsPerStep: context.flopsPerStep,
    margin: settings.margin ?? 0,
    width: settings.width,
    // Searches started before the base recipe's compute was held back keep the plan they ran with.
    reserveBase: patched('search-reserve-base-v1'),
    baseOnPass,
    // Searches started before every bracket was scaled from the grid's full-horizon recipes keep their plan.
    rescaleFromGrid: patched('search-rescale-from-grid-v1'),
    // Searches started before a recipe that forgot was repaired with more replay keep the plan they ran with.
    repair: patched('search-repair-v1') && settings.repair !== false,
    ...(stopEarly
      ? {
          stopEarly: {
            ...STOP_EARLY,
            at: [...STOP_EARLY.at],
            ...(typeof settings.stopEarly === 'object' ? settings.stopEarly : {}),
            passing: context.passing ?? [],
          },
        }
      : {}),
    outOfTime: settings.budgetWallMs ? () => Date.now() - started > settings.budgetWallMs! : undefined,
    judge: (metrics, segment) => {
      const decision = evaluateGate({
        rules: judgesPlasticity && segment && !segment.complete ? onTheWay : input.gateRules,
        suites,
        candidate: metrics as Record<string, Metrics>,
        champion: against.metrics,
        baseline: against.label,
        ...(judgesPlasticity && segment?.plasticity !== undefined ? { plasticity: { ratio: segment.plasticity } } : {}),
      });
      return judgedOf(decision, suites);
    },
    run: (runs) =>
      Promise.all(
        runs.map(async (r): Promise<TrialOutcome> => {
          try {
            const out = await trials.runRecipeTrial({
              line: input.line,
              key: `${input.cycleKey}:${r.trial.id}`,
              init: input.init,
              dropDigest: input.dropDigest,
              replay: input.replay,
              recipe: recipeOf(r.trial.knobs),
              modelConfig: input.modelConfig,
              stopAt: r.toStep,
              suites: input.suites,
              ...(r.resume ? { resumeFrom: r.resume } : {}),
              ...(judgesPlasticity && r.toStep >= r.trial.knobs.steps ? { plasticitySeed: base.seed } : {}),
            });
            return {
              ok: true,
              steps: out.steps,
              flops: out.flops,
              wallMs: out.wallMs,
              checkpoint: out.checkpoint,
              weights: out.weights,
              metrics: out.metrics,
              ...(out.plasticity !== undefined ? { plasticity: out.plasticity } : {}),
            };
          } catch (err) {
            const cause = err instanceof ActivityFailure ? err.cause : err;
            return { ok: false, error: cause instanceof Error ? cause.message : String(cause) };
          }
        }),
      ),
  });

  await light.recordRecipeTrials({
    line: input.line,
    cycleKey: input.cycleKey,
    cycleId: input.cycleId,
    dropDigest: input.dropDigest,
    features: { ...input.features },
    trials: outcome.trials.map((t) => ({
      trial: t.trial,
      rung: t.rung,
      bracket: t.bracket,
      source: t.source,
      recipe: recipeOf(t.knobs) as unknown as Record<string, unknown>,
      fromStep: t.fromStep,
      toStep: t.toStep,
      flops: t.flops,
      wallMs: t.wallMs,
      metrics: t.metrics,
      margin: t.margin,
      pass: t.pass,
      status: t.status,
      summary: t.summary,
    })),
  });
  const c = outcome.chosen;
  const b = outcome.best;
  return {
    chosen: c && c.checkpoint ? { recipe: recipeOf(c.knobs), checkpoint: c.checkpoint, margin: c.margin ?? 0 } : null,
    best: b ? { trial: b.trial, recipe: recipeOf(b.knobs), steps: b.toStep, margin: b.margin, summary: b.summary } : null,
    trials: outcome.trials.length,
    flops: outcome.flops,
    budgetFlops,
    reason: outcome.reason,
  };

  async function againstMetrics(): Promise<{ metrics: Record<string, Metrics>; label?: string }> {
    if (input.champion !== null) {
      const m = await evals.evaluateVersions({ line: input.line, versions: [input.champion], suites: input.suites });
      return { metrics: m[input.champion]! };
    }
    const f = input.foundationStable;
    const held = f ? input.suites.filter((s) => s.line === f.line) : [];
    const own = input.suites.filter((s) => !held.includes(s));
    const [untrained, foundation] = await Promise.all([
      own.length ? evals.evaluateUntrained({ modelConfig: input.modelConfig, seed: base.seed, suites: own }) : {},
      f && held.length ? evals.evaluateVersions({ line: f.line, versions: [f.version], suites: held }).then((m) => m[f.version]!) : {},
    ]);
    return {
      metrics: { ...untrained, ...foundation },
      label: f && held.length ? `an untrained model and ${f.line}@${f.version}` : 'an untrained model of its shape',
    };
  }
}

/** The search's workflow id: one per cycle. */
export const recipeSearchId = (cycleId: string) => `${cycleId}:search`;
