/**
 * Recipe search (issue 15): the trial activity on the training queue (a short training from the champion, or a
 * continuation of an earlier rung's checkpoint, judged on the line's suites) and the search's registry steps.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { initBackend } from '../model/backend.ts';
import { flopsPerToken } from '../model/config.ts';
import { type ProbeOutcome, DEFAULT_PROBE_BUDGET, measurePlasticity, probeLearning } from '../model/plasticity.ts';
import { CheckpointMismatchError, InvalidRecipeError, TrainingDivergedError, readCheckpoint, trainModel } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import { saveModel } from '../model/weights.ts';
import { resolveSuites } from '../domain/suites.ts';
import { type Schedule, passingTrajectory } from '../domain/recipe-search.ts';
import type { Metrics } from '../schemas/contracts/gate.ts';
import type { ModelConfig } from '../schemas/io.ts';
import type { TrialInput } from '../registry/trials.ts';
import type { ActivityDeps } from './deps.ts';
import { measureSuite } from './evaluate.ts';
import { enforceRecipeLimits } from './limits.ts';
import { trainingData } from './train.ts';
import type { SuiteRef, TrainInput } from './types.ts';

export interface TrialRunInput extends TrainInput {
  /** Train up to this step (the trial's recipe.steps is its horizon; a rung may stop before it). */
  stopAt: number;
  suites: SuiteRef[];
  /**
   * Measure the weights' plasticity as the gate measures a candidate's (model/plasticity.ts, fresh model of this
   * seed, the default probe budget): set when the gate has a plasticity floor and this segment ends the trial.
   */
  plasticitySeed?: number;
}

export interface TrialRunOutcome {
  steps: number;
  /** Compute of this segment only (steps after the resume). */
  flops: number;
  wallMs: number;
  /** The checkpoint at `stopAt`: the next rung resumes from it; at the horizon it is the candidate's. */
  checkpoint: string;
  weights: string;
  finalLoss: number;
  metrics: Record<string, Metrics>;
  /** The plasticity ratio of `weights`, when `plasticitySeed` asked for it. */
  plasticity?: number;
}

/** Training-queue activities of the search. */
export function trialActivities(deps: ActivityDeps) {
  const { trainingSources, initialWeights } = trainingData(deps);
  /** Fresh-model probe outcomes by (config, seed, backend), as evaluate.ts keeps them: the same for every trial of a line. */
  const references = new Map<string, ProbeOutcome>();
  return {
    /**
     * Runs one trial segment: trains `recipe` from the champion (or resumes `resumeFrom`) up to `stopAt`, stores
     * the checkpoint there and the weights, and measures them on `suites`. Writes only to the content-addressed
     * store; deterministic, so a retry repeats the same segment. A diverged or refused recipe is non-retryable.
     */
    async runRecipeTrial(input: TrialRunInput): Promise<TrialRunOutcome> {
      const ctx = Context.current();
      const backend = await initBackend();
      const { init, reference, config } = await initialWeights(input);
      // A trial's recipe (a warm start may come from another line's record) trains within this line's limits.
      await enforceRecipeLimits(deps, `trial ${input.key}`, input.line, input.recipe, config);
      const sources = await trainingSources(input);
      const resume = input.resumeFrom ? await deps.store.get(input.resumeFrom) : undefined;
      const startStep = resume ? readCheckpoint(resume).step : 0;
      let calls = 0;
      let checkpoint: string | undefined;
      const every = gcd(input.stopAt, input.recipe.steps);
      const beat = setInterval(() => ctx.heartbeat({ trial: input.key }), 2000);
      let result;
      try {
        result = await trainModel({
          config,
          init,
          reference,
          sources,
          // Exactly what trainCandidate trains with, so the winner's checkpoint is the candidate's.
          recipe: { ...input.recipe, rewarm: input.recipe.rewarm && input.init !== null },
          checkpointEvery: every,
          resume,
          onCheckpoint: async (bytes, step) => {
            if (step === input.stopAt) checkpoint = await deps.store.put(bytes);
          },
          // Polled before each step: the n-th call (from 0) comes when startStep + n steps are done.
          shouldStop: () => startStep + calls++ >= input.stopAt,
        });
      } catch (err) {
        if (err instanceof TrainingDivergedError || err instanceof CheckpointMismatchError || err instanceof InvalidRecipeError)
          throw ApplicationFailure.create({ message: `trial ${input.key}: ${err.message}`, type: err.name, nonRetryable: true });
        throw err;
      } finally {
        clearInterval(beat);
      }
      if (!checkpoint) throw ApplicationFailure.nonRetryable(`trial ${input.key} wrote no checkpoint at step ${input.stopAt}`, 'TrialCheckpointError');
      const weights = await deps.store.put(saveModel(config, result.weights, { line: input.line, trial: input.key }));
      const data = await resolveSuites(input.suites, deps.drops);
      const model = LanguageModel.create(config, result.weights);
      const metrics: Record<string, Metrics> = {};
      let plasticity: number | undefined;
      const beatMore = setInterval(() => ctx.heartbeat({ trial: input.key }), 2000);
      try {
        for (const s of input.suites) metrics[s.name] = await measureSuite(model, data.get(s.name)!);
        if (input.plasticitySeed !== undefined) {
          // The gate judges the candidate's plasticity: a trial that may become the candidate is judged on it too.
          const seed = input.plasticitySeed;
          const refKey = JSON.stringify([config, seed, DEFAULT_PROBE_BUDGET, backend]);
          let ref = references.get(refKey);
          if (!ref) references.set(refKey, (ref = await probeLearning(config, initWeights(config, seed), DEFAULT_PROBE_BUDGET)));
          plasticity = (await measurePlasticity(config, result.weights, { initSeed: seed, reference: ref })).ratio;
        }
      } finally {
        clearInterval(beatMore);
        model.dispose();
      }
      const segment = result.steps - startStep;
      return {
        steps: result.steps,
        flops: segment * input.recipe.batchSize * config.context * flopsPerToken(config),
        wallMs: Math.round(result.wallMs),
        checkpoint,
        weights,
        finalLoss: result.finalLoss,
        metrics,
        ...(plasticity !== undefined ? { plasticity } : {}),
      };
    },
  };
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Workflow-queue (local) activities of the search: its context from the registry, and the record. */
export function searchRegistryActivities(deps: ActivityDeps) {
  return {
    /**
     * What a search needs before its first trial: training FLOPs per step and the recipes chosen on earlier drops,
     * this line's own or, while it has none, those of the other lines on its foundation line with its shape (`historyFrom` names
     * them: the warm start's provenance in the activity's result), and the trajectories of the line's passing updates
     * (`passing`, for stopping hopeless ones early). Read-only.
     */
    async recipeSearchContext(input: { line: string; modelConfig: ModelConfig; batchSize: number }) {
      const own = await deps.registry.chosenRecipes(input.line);
      const elsewhere = own.length ? [] : await deps.registry.chosenRecipesElsewhere(input.line);
      const history = own.length ? own : elsewhere.map(({ line: _line, ...h }) => h);
      const historyFrom = own.length ? [input.line] : [...new Set(elsewhere.map((h) => h.line))];
      // What the line's passing updates looked like on their way (the early stop's envelope).
      const passing = (await deps.registry.passedTrials(input.line)).flatMap((t) => passingTrajectory(t.recipe as unknown as Schedule, t.segments) ?? []);
      return { flopsPerStep: input.batchSize * input.modelConfig.context * flopsPerToken(input.modelConfig), history, historyFrom, passing };
    },
    /** Records every trial segment of a search; idempotent by (cycle key, trial, rung). */
    async recordRecipeTrials(input: {
      line: string;
      cycleKey: string;
      cycleId: string;
      dropDigest: string | null;
      features: Record<string, unknown>;
      trials: TrialInput[];
    }) {
      return deps.registry.recordTrials(input);
    },
  };
}
