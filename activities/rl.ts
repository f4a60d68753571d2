/**
 * The RL adapt step of a feedback cycle (issue 16): from the line's stable version (policy start and KL
 * reference), model/rl.ts rlTrain on the feedback drop's verifier prompts (sampled fresh) and ratings (logged,
 * clipped importance weights), with the line's text replay, stopped by the over-optimisation guard or the KL
 * budget. Writes the candidate like trainCandidate (a training run, weights in the store) and returns the
 * curves and the guard verdict; the cycle's gate judges them (workflows/rl-cycle.ts). Also the registry step
 * that records the run once the version exists.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { initBackend } from '../model/backend.ts';
import { RL_DEFAULTS, type RlRecipe, type RlTask, rlInterventions, rlTrain } from '../model/rl.ts';
import { loadModel, saveModel } from '../model/weights.ts';
import { parseFeedback, type VerifierPrompt } from '../domain/feedback.ts';
import { RL_GUARD_DEFAULTS, overOptimisation, rlVerdict, type RlGuardPolicy } from '../domain/rl-guards.ts';
import { hasIndependentGold, verify } from '../domain/verifiers.ts';
import { DEFAULT_RL } from '../schemas/defaults.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import type { ModelConfig, Recipe } from '../schemas/io.ts';
import type { ActivityDeps } from './deps.ts';
import { enforceRlLimits } from './limits.ts';
import type { RlOutcome, RlRecord, TrainingOutcome, VersionRef } from './types.ts';

export interface RlTrainInput {
  line: string;
  key: string;
  /** The line's stable version: where the policy starts and what KL is measured against. */
  reference: VersionRef;
  dropDigest: string;
  replay: string[];
  recipe: Recipe;
  modelConfig: ModelConfig;
}

// A gold only where the prompt has one of its own: without it the check scores gold as the reward (and the guard
// cannot tell them apart), which ingest allows only on a line with gate rule allowFeedbackWithoutGold.
const toTask = (p: VerifierPrompt): RlTask => ({
  prompt: p.prompt,
  reward: (c) => verify(p.verifier, c),
  ...(hasIndependentGold(p) ? { gold: (c: string) => verify(p.gold!, c) } : {}),
});

/** The RL recipe a cycle runs: RL_DEFAULTS under the recipe's `rl` fields; the line recipe's seed. */
export function rlRecipeOf(recipe: Recipe): RlRecipe {
  return { ...RL_DEFAULTS, steps: DEFAULT_RL.steps, ...recipe.rl, seed: recipe.seed };
}

export function rlActivities(deps: ActivityDeps) {
  return {
    /** Trains a candidate by RL from the stable version; heartbeats its step. Writes only to the content-addressed store. */
    async trainRl(input: RlTrainInput): Promise<RlOutcome> {
      const ctx = Context.current();
      const backend = await initBackend();
      const recipe = rlRecipeOf(input.recipe);
      const run = await deps.registry.startTrainingRun({
        line: input.line,
        key: input.key,
        parentVersion: input.reference.version,
        recipe: { ...input.recipe, rl: recipe },
        seed: recipe.seed,
        drops: [input.dropDigest],
      });
      // An earlier attempt recorded the run failed and died before saying so: it stays failed, for the same reason.
      if (run.status === 'failed') throw ApplicationFailure.nonRetryable(run.error ?? `RL run ${input.key} failed`, ErrorType.InvalidData);
      const fail = async (message: string): Promise<never> => {
        await deps.registry.finishTrainingRun(input.key, { status: 'failed', error: message });
        throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidData);
      };
      const fb = parseFeedback(await deps.store.get(input.dropDigest), `feedback ${input.dropDigest.slice(0, 12)}`);
      if (fb.heldOutPrompts.length === 0) return fail(`feedback ${input.dropDigest.slice(0, 12)} has no held-out verifier prompts for the guards`);
      const version = await deps.registry.getVersion(input.reference.line, input.reference.version);
      const { config, weights } = loadModel(await deps.store.get(version.weightsDigest));
      // Whatever asked for this update (a drop's rl fields, the line's, a forged input), it runs within its line's
      // limits; refused, the run ends here, recorded as failed.
      const counts = { prompts: fb.prompts.length, ratings: fb.ratings.length, heldOutPrompts: fb.heldOutPrompts.length, heldOutRatings: fb.heldOutRatings.length };
      try {
        await enforceRlLimits(deps, `RL run ${input.key}`, input.line, recipe, config, counts);
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) await deps.registry.finishTrainingRun(input.key, { status: 'failed', error: err.message });
        throw err;
      }
      // Plasticity interventions the cycle asked for (its floor, or the drop's recipe): the RL update applies those
      // that keep the released model's function and refuses the others, and the record says which and why.
      const requested = input.recipe.interventions ?? [];
      const defence = rlInterventions(config, weights, requested, { seed: recipe.seed, l2Pull: input.recipe.l2Pull });
      // Old skills: the line's accepted text drops (feedback drops hold no text and add nothing).
      const replay: { name: string; weight: number; docs: string[] }[] = [];
      let budget = input.recipe.replayBudget;
      for (const digest of input.replay) {
        if (budget <= 0) break;
        const docs = (await deps.drops.get(digest)).train.slice(0, budget);
        budget -= docs.length;
        if (docs.length) replay.push({ name: `replay:${digest.slice(0, 12)}`, weight: 1, docs });
      }
      const guard: RlGuardPolicy = { ...RL_GUARD_DEFAULTS, klBudget: recipe.klBudget };
      const started = Date.now();
      // Alive before the first held-out check and sampling round: a slow first step must not read as a dead worker.
      ctx.heartbeat({ step: 0, steps: recipe.steps });
      await new Promise((r) => setImmediate(r));
      let result;
      try {
        result = await rlTrain({
          config,
          reference: weights,
          recipe,
          tasks: fb.prompts.map(toTask),
          logged: fb.ratings,
          heldOut: fb.heldOutPrompts.map(toTask),
          heldOutLogged: fb.heldOutRatings,
          replay,
          ...(defence.start ? { start: defence.start } : {}),
          ...(defence.l2Pull ? { l2Pull: defence.l2Pull } : {}),
          stopRule: (checks) => overOptimisation(checks, guard),
          // Heartbeats every step (the update runs on the event loop) and stops when the cycle is cancelled.
          onStep: async (step, steps) => {
            ctx.heartbeat({ step, steps });
            await new Promise((r) => setImmediate(r));
            return ctx.cancellationSignal.aborted;
          },
        });
      } catch (err) {
        // An invalid RL recipe or feedback with nothing to learn from is the same on every attempt.
        if (err instanceof Error && err.message.startsWith('rl')) return fail(err.message);
        throw err;
      }
      // Cancelled: no candidate (a retry starts again from stable with the same seed).
      if (result.stoppedBy === 'cancelled') throw new CancelledFailure(`RL update of ${input.key} was ${result.reason}`);
      const verdict = rlVerdict(result.checks, guard, result.stoppedBy === 'guard' ? result.reason : undefined);
      const weightsDigest = await deps.store.put(saveModel(config, result.weights, { line: input.line, trainingRun: input.key }));
      // Compute as supervised training records it: tokens sampled and trained, and the FLOPs of every pass.
      const training: TrainingOutcome = {
        weightsDigest,
        steps: result.steps,
        tokens: result.spent.sampledTokens + result.spent.trainedTokens,
        flops: result.spent.flops,
        wallMs: Date.now() - started,
        backend,
        finalLoss: result.finalLoss,
        resumedFromStep: 0,
        lossCurve: result.curve.slice(-50).map((c) => c.loss),
      };
      // A run an earlier attempt completed is trained again (its checks are not kept with the run) from the same
      // seed; where that gives other weights (another backend's rounding), the run's record and this outcome would
      // disagree, so the cycle ends with the reason rather than register weights the run does not record.
      // No update kept (the first step's loss was not finite): no final loss rather than NaN.
      const finished = await deps.registry.finishTrainingRun(input.key, {
        status: 'completed',
        ...training,
        ...(Number.isFinite(training.finalLoss) ? {} : { finalLoss: undefined }),
        checkpoints: [],
      });
      if (finished.artifactDigest !== weightsDigest)
        throw ApplicationFailure.nonRetryable(
          `RL run ${input.key} was already completed by an earlier attempt with weights ${finished.artifactDigest?.slice(0, 12)}, and this attempt trained ${weightsDigest.slice(0, 12)} (on ${backend}); send the feedback again`,
          ErrorType.RegistryConflict,
        );
      const first = result.checks[0]!;
      const last = result.checks[result.checks.length - 1]!;
      return {
        training,
        rl: {
          recipe,
          guard,
          checks: result.checks,
          curve: result.curve.slice(-100),
          stoppedBy: result.stoppedBy,
          ...(result.reason ? { reason: result.reason } : {}),
          finalKl: result.finalKl,
          ...(requested.length ? { interventions: { applied: defence.applied, refused: defence.refused } } : {}),
          verdict,
          rewardStats: {
            heldOutRewardBefore: first.reward,
            heldOutRewardAfter: last.reward,
            goldBefore: first.gold,
            goldAfter: last.gold,
            sampledRewardMean: result.curve.length ? result.curve.reduce((s, c) => s + c.reward, 0) / result.curve.length : null,
            prompts: fb.prompts.length,
            ratings: fb.ratings.length,
            heldOutPrompts: fb.heldOutPrompts.length,
            heldOutRatings: fb.heldOutRatings.length,
            sampledTokens: result.spent.sampledTokens,
            trainedTokens: result.spent.trainedTokens,
            // Held-out prompts whose gold is a check of its own; 0: the run had no gold check (report and CLI say so).
            goldPrompts: fb.heldOutPrompts.filter(hasIndependentGold).length,
            ...(first.ratings === undefined ? {} : { ratingsBefore: first.ratings, ratingsAfter: last.ratings }),
          },
        },
      };
    },
  };
}

/** The registry step of a feedback cycle: the RL run of a version, once (a retry keeps the first). */
export function rlRegistryActivities(deps: ActivityDeps) {
  return {
    async recordRlRun(input: { line: string; version: number; dropDigest: string; rl: RlRecord }): Promise<{ recorded: true }> {
      await deps.registry.recordRlRun({
        line: input.line,
        version: input.version,
        feedbackDigests: [input.dropDigest],
        // What the update did with the plasticity interventions asked for, beside the fields it ran with.
        recipe: { ...input.rl.recipe, ...(input.rl.interventions ? { interventions: input.rl.interventions } : {}) },
        rewardStats: input.rl.rewardStats,
        checks: input.rl.checks,
        finalKl: input.rl.finalKl,
        stoppedBy: input.rl.stoppedBy,
      });
      return { recorded: true };
    },
  };
}
