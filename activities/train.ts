/**
 * Adapt: train a candidate from its parent's weights on the new drop mixed with the replay buffer.
 * Checkpoints go to the artifact store and their digests into the heartbeat, so a retry on another
 * worker resumes from the last one and ends with the same weights as an uninterrupted run.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { initBackend } from '../model/backend.ts';
import { applyInterventions } from '../model/plasticity.ts';
import { initWeights } from '../model/transformer.ts';
import { CheckpointMismatchError, InvalidRecipeError, TrainingDivergedError, readCheckpoint, trainModel, type TrainResult } from '../model/train.ts';
import { loadModel, saveModel, type Weights } from '../model/weights.ts';
import { withoutSuperseded } from '../domain/replay.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { progressSignal } from '../schemas/contracts/messages.ts';
import type { ActivityDeps } from './deps.ts';
import { enforceRecipeLimits } from './limits.ts';
import type { LineLimits, ModelConfig } from '../schemas/io.ts';
import type { TrainingRunInfo } from '../registry/types.ts';
import type { TrainInput, TrainingOutcome } from './types.ts';

/** What the training activity heartbeats; a retry reads it back to resume. */
export interface TrainingHeartbeat {
  step: number;
  checkpoint?: string;
  /** The step `checkpoint` was taken at (where a retry resumes). */
  checkpointStep?: number;
  loss?: number;
}

const PROGRESS_SIGNAL_MS = 2000;
/** How often a live training run heartbeats, whatever its step time (the training heartbeat timeout is 30 s). */
export const TRAINING_HEARTBEAT_MS = 5000;

function withoutDistill<R extends { distillTemperature?: number; distillWeight?: number }>(recipe: R): Omit<R, 'distillTemperature' | 'distillWeight'> {
  const { distillTemperature: _t, distillWeight: _w, ...rest } = recipe;
  return rest;
}

/** How a training input becomes data and weights: shared by trainCandidate and the recipe search's trials. */
export function trainingData(deps: ActivityDeps) {
  /**
   * Training sources: the new drop, and the replay buffer — earlier accepted drops, newest first, within the
   * record budget — with the replay share split evenly across those drops, so a small drop of facts is
   * rehearsed as often as a large drop of general text.
   */
  async function trainingSources(input: TrainInput) {
    if (input.dropDigest === null) return transferSources(input);
    const drop = await deps.drops.get(input.dropDigest);
    if (drop.train.length === 0) {
      throw ApplicationFailure.nonRetryable(
        `drop ${input.dropDigest.slice(0, 12)} has no training records (only held-out text or probes)`,
        ErrorType.InvalidData,
      );
    }
    const replay: { digest: string; docs: string[] }[] = [];
    let budget = input.recipe.replayBudget;
    for (const digest of input.replay) {
      if (budget <= 0) break;
      const docs = withoutSuperseded((await deps.drops.get(digest)).train, drop.probes).slice(0, budget);
      budget -= docs.length;
      if (docs.length) replay.push({ digest, docs });
    }
    const ratio = replay.length ? input.recipe.replayRatio : 0;
    return [
      { name: 'drop', weight: 1 - ratio, docs: drop.train },
      ...replay.map((r) => ({ name: `replay:${r.digest.slice(0, 12)}`, weight: ratio / replay.length, docs: r.docs })),
    ];
  }

  /**
   * A transfer's sources: the line's accepted data (its replay buffer, newest first, within the record budget), one
   * source per drop. The line's own drops share `1 - replayRatio` of each batch and its foundations' data the rest,
   * as a drop and its replay do in an ordinary cycle, so the line's facts are rehearsed as often as they were learned.
   * Only the line's own drops are distilled: on the foundations' general data the new foundation knows more than the
   * old application model, and its soft targets there would pull the student back toward the old base.
   */
  async function transferSources(input: TrainInput) {
    const own = new Set((await deps.registry.listDrops(input.line)).map((d) => d.digest));
    const replay: { digest: string; docs: string[]; own: boolean }[] = [];
    let budget = input.recipe.replayBudget;
    for (const digest of input.replay) {
      if (budget <= 0) break;
      const docs = (await deps.drops.get(digest)).train.slice(0, budget);
      budget -= docs.length;
      if (docs.length) replay.push({ digest, docs, own: own.has(digest) });
    }
    if (!replay.length) throw ApplicationFailure.nonRetryable(`${input.line} has no accepted data to transfer`, ErrorType.InvalidData);
    const mine = replay.filter((r) => r.own).length;
    const theirs = replay.length - mine;
    const share = (r: { own: boolean }) =>
      mine === 0 || theirs === 0 ? 1 / replay.length : r.own ? (1 - input.recipe.replayRatio) / mine : input.recipe.replayRatio / theirs;
    return replay.map((r) => ({ name: `replay:${r.digest.slice(0, 12)}`, weight: share(r), docs: r.docs, ...(mine > 0 && !r.own ? { distill: false } : {}) }));
  }

  async function loadVersion(ref: { line: string; version: number }) {
    const version = await deps.registry.getVersion(ref.line, ref.version);
    return loadModel(await deps.store.get(version.weightsDigest));
  }

  async function initialWeights(
    input: TrainInput,
  ): Promise<{ init: Weights; reference?: Weights; config: ModelConfig; teacher?: { config: ModelConfig; weights: Weights } }> {
    if (!input.init) return { init: initWeights(input.modelConfig, input.recipe.seed), config: input.modelConfig };
    const { config, weights } = await loadVersion(input.init);
    if (input.teacher) {
      // A transfer takes the new foundation's shape (which may differ from the line's); the teacher keeps its own.
      const teacher = await loadVersion(input.teacher);
      return { init: weights, config, teacher: { config: teacher.config, weights: teacher.weights } };
    }
    if (JSON.stringify(config) !== JSON.stringify(input.modelConfig)) {
      throw ApplicationFailure.nonRetryable(
        `${input.init.line}@${input.init.version} has model shape ${JSON.stringify(config)}, but ${input.line} trains ${JSON.stringify(input.modelConfig)}; a different shape needs a capability transfer, not an update`,
        ErrorType.InvalidRequest,
      );
    }
    // Interventions the cycle chose because the starting version's plasticity fell below the line's floor. The L2
    // pull (when on) pulls toward the parent as it was, or with l2Anchor 'init' toward the seed's fresh
    // initialisation (what the line's first version started from).
    const init = input.recipe.interventions?.length ? applyInterventions(config, weights, input.recipe.interventions, input.recipe.seed).weights : weights;
    const reference = input.recipe.l2Pull > 0 ? (input.recipe.l2Anchor === 'init' ? initWeights(config, input.recipe.seed) : weights) : undefined;
    return { init, reference, config };
  }

  return { trainingSources, initialWeights };
}

/** A finished run's outcome as recorded (its loss curve is not kept: empty). */
function recordedOutcome(run: TrainingRunInfo): TrainingOutcome {
  return {
    weightsDigest: run.artifactDigest!,
    steps: run.steps,
    tokens: run.tokens,
    flops: run.flops,
    wallMs: run.wallMs,
    backend: run.backend ?? 'unknown',
    finalLoss: run.finalLoss ?? 0,
    resumedFromStep: run.checkpoints.find((c) => c.resumed)?.step ?? 0,
    lossCurve: [],
  };
}

export function trainingActivities(deps: ActivityDeps) {
  const { trainingSources, initialWeights } = trainingData(deps);

  /**
   * What no retry can fix fails at once, typed and non-retryable, with the run recorded as failed; the cycle turns
   * it into a verdict. The same data and recipe diverge again, a foreign or corrupt checkpoint stays so, and so
   * does a recipe override the trainer refuses.
   */
  async function failDeterministically(key: string, err: TrainingDivergedError | CheckpointMismatchError | InvalidRecipeError): Promise<never> {
    await deps.registry.finishTrainingRun(key, { status: 'failed', error: err.message });
    const details = err instanceof TrainingDivergedError ? { step: err.step, loss: String(err.loss) } : {};
    throw ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: true, details: [details] });
  }

  return {
    /** Trains a candidate; heartbeats {step, checkpoint}; resumes from the last checkpoint on retry. Writes only to the content-addressed store. */
    async trainCandidate(input: TrainInput): Promise<TrainingOutcome> {
      const ctx = Context.current();
      const backend = await initBackend();
      const previous = ctx.info.heartbeatDetails as TrainingHeartbeat | undefined;
      const run = await deps.registry.startTrainingRun({
        line: input.line,
        key: input.key,
        // A transfer's parent is its teacher (the line's stable version); its base is the new foundation version.
        parentVersion: input.teacher ? input.teacher.version : input.init?.line === input.line ? input.init.version : null,
        recipe: input.recipe,
        seed: input.recipe.seed,
        drops: input.dropDigest ? [input.dropDigest] : [],
      });
      // An earlier attempt finished this run and its worker died before Temporal heard: the record is the outcome.
      // Training again would redo steps and, where kernels round differently (another backend), record one set of
      // weights with the run and register another with the version.
      if (run.status === 'completed') return recordedOutcome(run);
      if (run.status === 'failed')
        throw ApplicationFailure.create({ message: run.error ?? `training run ${input.key} failed`, type: 'TrainingRunFailedError', nonRetryable: true });
      let init: Weights, reference: Weights | undefined, sources: Awaited<ReturnType<typeof trainingSources>>;
      let config: ModelConfig, teacher: { config: ModelConfig; weights: Weights } | undefined;
      let limits: LineLimits;
      try {
        ({ init, reference, config, teacher } = await initialWeights(input));
        // Whatever asked for this run (a drop's override, a transfer, a forged input), it trains within its line's limits.
        limits = await enforceRecipeLimits(deps, `training run ${input.key}`, input.line, input.recipe, config);
        sources = await trainingSources(input);
      } catch (err) {
        // A model/config mismatch, a recipe over the line's limits or a drop with nothing to train on: the run ends here, recorded as failed.
        if (err instanceof ApplicationFailure && err.nonRetryable) await deps.registry.finishTrainingRun(input.key, { status: 'failed', error: err.message });
        throw err;
      }
      // A search's winning trial hands over its final checkpoint: the candidate is those weights, not a second training.
      // The heartbeat the server hands a retry can lag (the SDK throttles it) and name a checkpoint the line's
      // keepCheckpoints has since deleted: the run then starts again from where it began (training is
      // deterministic, so it ends with the same weights; only time is lost).
      const fromHeartbeat = previous?.checkpoint !== undefined && (await deps.store.has(previous.checkpoint));
      const resumeDigest = fromHeartbeat ? previous!.checkpoint : input.resumeFrom;
      const resume = resumeDigest ? await deps.store.get(resumeDigest) : undefined;
      if (resume) {
        try {
          readCheckpoint(resume);
        } catch (err) {
          // A corrupt checkpoint is corrupt on every attempt.
          return failDeterministically(
            input.key,
            new CheckpointMismatchError(`checkpoint ${resumeDigest!.slice(0, 12)} cannot be resumed: ${(err as Error).message}`),
          );
        }
      }

      const resumedFromStep = resume ? ((fromHeartbeat ? previous?.checkpointStep : undefined) ?? readCheckpoint(resume).step) : 0;
      let lastCheckpoint = resumeDigest;
      // Recorded with the run, so `perennial verify` re-hashes every checkpoint the version was trained through.
      const checkpoints: { digest: string; step: number; resumed?: true }[] = lastCheckpoint
        ? [{ digest: lastCheckpoint, step: resumedFromStep, resumed: true }]
        : [];
      let lastCheckpointStep = resume ? resumedFromStep : undefined;
      /**
       * Keeps the newest `keepCheckpoints` checkpoints this attempt wrote (the line's limit) and deletes older ones
       * from the store and the run's list; the one it resumed from stays (a search trial's record names it). Called
       * after the heartbeat that names the newest, so a retry resumes from that one.
       */
      const prune = async () => {
        const written = checkpoints.filter((c) => !c.resumed);
        for (const old of written.slice(0, Math.max(0, written.length - limits.keepCheckpoints))) {
          checkpoints.splice(checkpoints.indexOf(old), 1);
          if (old.digest !== lastCheckpoint && old.digest !== resumeDigest && !checkpoints.some((c) => c.digest === old.digest))
            await deps.store.remove(old.digest);
        }
      };
      let lastLoss = previous?.loss;
      let lastSignal = 0;
      let lastStep = resumedFromStep;
      const details = (): TrainingHeartbeat => ({ step: lastStep, checkpoint: lastCheckpoint, checkpointStep: lastCheckpointStep, loss: lastLoss });
      // Progress comes every 1% of the steps, and a `base` step takes 1-4 s: 12 steps between reports can outlast
      // the 30 s heartbeat timeout on a loaded machine, and the server would retry a healthy run. The timer fires
      // between steps (the training loop yields after each), so a live run heartbeats every few seconds whatever
      // its step time; a dead worker still stops heartbeating.
      const beat = setInterval(() => ctx.heartbeat(details()), deps.trainingHeartbeatMs ?? TRAINING_HEARTBEAT_MS);
      let result: TrainResult;
      try {
        result = await trainModel({
          config,
          init,
          reference,
          teacher,
          sources,
          // The distillation fields are for transfers: a line's recipe may set them, and its ordinary cycles ignore them.
          recipe: teacher
            ? { ...input.recipe, rewarm: input.recipe.rewarm && input.init !== null }
            : { ...withoutDistill(input.recipe), rewarm: input.recipe.rewarm && input.init !== null },
          checkpointEvery: input.recipe.checkpointEvery,
          resume,
          onCheckpoint: async (bytes, step) => {
            lastCheckpoint = await deps.store.put(bytes);
            lastCheckpointStep = step;
            lastStep = step;
            checkpoints.push({ digest: lastCheckpoint, step });
            ctx.heartbeat(details());
            await prune();
          },
          onProgress: async (p) => {
            lastLoss = p.loss;
            lastStep = p.step;
            ctx.heartbeat(details());
            const now = Date.now();
            if (input.progressTo && (now - lastSignal >= PROGRESS_SIGNAL_MS || p.step === p.steps)) {
              lastSignal = now;
              // Progress is for the live view only; a line workflow between runs may miss one.
              await deps.client.workflow
                .getHandle(input.progressTo)
                .signal(progressSignal, {
                  cycleId: ctx.info.workflowExecution?.workflowId ?? input.key,
                  step: p.step,
                  steps: p.steps,
                  loss: p.loss,
                  tokensPerSecond: p.tokensPerSecond,
                })
                .catch(() => undefined);
            }
          },
          shouldStop: () => ctx.cancellationSignal.aborted,
        });
      } catch (err) {
        if (err instanceof TrainingDivergedError || err instanceof CheckpointMismatchError || err instanceof InvalidRecipeError)
          return failDeterministically(input.key, err);
        throw err;
      } finally {
        clearInterval(beat);
      }
      if (result.stopped)
        throw new CancelledFailure(`training of ${input.key} was cancelled at step ${result.steps}; last checkpoint ${lastCheckpoint ?? 'none'}`);

      const weightsDigest = await deps.store.put(saveModel(config, result.weights, { line: input.line, trainingRun: input.key }));
      const outcome: TrainingOutcome = {
        weightsDigest,
        steps: result.steps,
        tokens: result.tokens,
        flops: result.flops,
        // Resumed from a checkpoint (a retry, or a search trial's), the steps before it count too.
        wallMs: Math.round(result.totalWallMs),
        backend: backend,
        finalLoss: result.finalLoss,
        resumedFromStep,
        lossCurve: result.lossCurve.slice(-50),
      };
      // Only checkpoints still stored are recorded (`verify` re-hashes each): a stalled earlier attempt of this run
      // writes the same checkpoints (training is deterministic) and prunes them as it goes.
      const kept = (await Promise.all(checkpoints.map(async (c) => ((await deps.store.has(c.digest)) ? c : null)))).filter((c) => c !== null);
      const finished = await deps.registry.finishTrainingRun(input.key, {
        status: 'completed',
        ...outcome,
        wallMs: Math.round(outcome.wallMs),
        checkpoints: kept,
      });
      // Another attempt of this run (one the server had given up on, still running on a stalled worker) finished
      // first: its weights are the record, so they are the candidate.
      return finished.artifactDigest === weightsDigest ? outcome : recordedOutcome(finished);
    },
  };
}
