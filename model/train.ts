/**
 * The training loop: AdamW with warmup + cosine decay, global-norm clipping, an optional L2 pull
 * toward reference weights, deterministic mixture batches, and exact resume from checkpoints.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { backendName, initBackend } from './backend.ts';
import { type ModelConfig, flopsPerToken, validateConfig } from './config.ts';
import { BatchSampler, type Source } from './data.ts';
import { onDevice } from './ops.ts';
import { AdamW, DeviceAdamW } from './optimizer.ts';
import { LanguageModel } from './transformer.ts';
import { type Weights, checkWeights, decodeSafetensors, encodeSafetensors, weightsDigest } from './weights.ts';

export type { Source } from './data.ts';

/** How to train: everything that, with the data and initial weights, determines the result. */
export interface Recipe {
  steps: number;
  batchSize: number;
  /** Peak learning rate, reached at the end of warmup. */
  learningRate: number;
  /** Floor of the cosine decay (default learningRate / 10). */
  minLearningRate?: number;
  warmupSteps: number;
  /**
   * Continuing from an earlier version whose schedule ended at minLearningRate: warm up from
   * minLearningRate rather than from 0 (re-warming), so the first steps neither stall nor jump.
   */
  rewarm?: boolean;
  /** Decoupled weight decay, applied to weight matrices and embeddings. */
  weightDecay: number;
  /** Global gradient-norm clip; 0 disables. */
  gradClip: number;
  /** Strength of the L2 pull toward `reference` (the parent version); 0 disables. */
  l2Pull: number;
  /** Temperature of the distillation targets (needs a `teacher`; default 2). */
  distillTemperature?: number;
  /** Share of the loss that is distillation, in [0, 1]: (1 − w)·CE + w·T²·KL (needs a `teacher`; default 0.5). */
  distillWeight?: number;
  seed: number;
}

/** Distillation defaults when a teacher is given and the recipe names no temperature or weight. */
export const DISTILL_DEFAULTS = { temperature: 2, weight: 0.5 } as const;

/** Progress report, sent at every loss-curve point and at the last step. */
export interface TrainProgress {
  step: number;
  steps: number;
  /** Mean loss since the previous report. */
  loss: number;
  learningRate: number;
  tokensPerSecond: number;
}

/** Input of trainModel. */
export interface TrainOptions {
  config: ModelConfig;
  /** Initial weights: the parent version, or initWeights(config, seed) for a fresh model. */
  init: Weights;
  /** Reference weights for the L2 pull (usually the parent). */
  reference?: Weights;
  /**
   * A teacher to distil from (the current application model in an upgrade): its softmax at the recipe's
   * temperature over the same byte tokens is the soft target. Any shape with the same vocabulary and a
   * context at least the student's.
   */
  teacher?: { config: ModelConfig; weights: Weights };
  sources: Source[];
  recipe: Recipe;
  /** Emit a checkpoint every this many steps (and never if absent or 0). */
  checkpointEvery?: number;
  /** A checkpoint from an earlier, interrupted run of the same job: training continues after it. */
  resume?: Uint8Array;
  /** Receives each checkpoint; training waits for it (store it, then heartbeat {step, digest}). */
  onCheckpoint?: (checkpoint: Uint8Array, step: number) => Promise<void>;
  onProgress?: (p: TrainProgress) => void | Promise<void>;
  /** Polled before every step; when it returns true training stops and returns stopped: true. */
  shouldStop?: () => boolean;
  /** Steps per loss-curve point (default: steps / 100, at least 1). */
  lossEvery?: number;
  /**
   * Run the optimiser on the device (DeviceAdamW) instead of in JS. Default: on native TensorFlow only,
   * where the per-step round trip of every gradient and weight is the bottleneck; on wasm the JS AdamW
   * is faster than hundreds of small dispatches. Both give the same results to float32 rounding.
   */
  deviceStep?: boolean;
}

/** Output of trainModel. Totals (steps, tokens, flops, lossCurve) include steps done before a resume. */
export interface TrainResult {
  weights: Weights;
  /** Steps completed (equals recipe.steps unless stopped). */
  steps: number;
  stopped: boolean;
  /** Mean loss over the last loss-curve interval. */
  finalLoss: number;
  /** Mean training loss per `lossEvery` steps. */
  lossCurve: number[];
  lossEvery: number;
  /** Token positions trained on: steps · batchSize · context. */
  tokens: number;
  /** Training FLOPs: tokens · flopsPerToken(config). */
  flops: number;
  /** Wall time of this call (not of steps done before a resume). */
  wallMs: number;
  /**
   * Wall time of the steps behind these weights: this call's and, after a resume, the time its checkpoint
   * recorded (steps redone after a crash count once; a checkpoint from before wall time was kept adds none).
   */
  totalWallMs: number;
  /** The tfjs backend that ran: 'tensorflow', 'wasm' or 'cpu'. */
  backend: string;
}

/** Thrown when a resume checkpoint was made by a different job (recipe, config, data or weights). */
export class CheckpointMismatchError extends Error {
  override name = 'CheckpointMismatchError';
}

/** Thrown when a recipe cannot be trained with (a value out of range, minLearningRate above learningRate). */
export class InvalidRecipeError extends Error {
  override name = 'InvalidRecipeError';
}

/** Thrown when a step's loss is not finite: the same data and recipe diverge again, so no retry can fix it. */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  constructor(
    readonly step: number,
    readonly loss: number,
  ) {
    super(`training diverged at step ${step} (loss ${Number.isNaN(loss) ? 'nan' : loss > 0 ? 'inf' : '-inf'})`);
  }
}

/** Value of `format` in a checkpoint's metadata. */
export const CHECKPOINT_FORMAT = 'perennial-checkpoint/1';
const MOMENT1 = 'optimizer.m.';
const MOMENT2 = 'optimizer.v.';

/**
 * Learning rate for step `step` (1-based): linear warmup over warmupSteps (from 0, or from
 * minLearningRate when re-warming), then cosine decay to minLearningRate at recipe.steps.
 */
export function learningRateAt(step: number, recipe: Recipe): number {
  const peak = recipe.learningRate;
  const floor = recipe.minLearningRate ?? peak / 10;
  if (step <= recipe.warmupSteps) {
    const start = recipe.rewarm ? floor : 0;
    return start + ((peak - start) * step) / recipe.warmupSteps;
  }
  const progress = Math.min(1, (step - recipe.warmupSteps) / Math.max(1, recipe.steps - recipe.warmupSteps));
  return floor + 0.5 * (peak - floor) * (1 + Math.cos(Math.PI * progress));
}

function sha256(parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    // Length-prefix every part so that ("ab", "c") and ("a", "bc") hash differently.
    const bytes = typeof p === 'string' ? new TextEncoder().encode(p) : p;
    h.update(`${bytes.length}:`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** JSON with sorted keys, so equal objects hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/** Hashes of everything a checkpoint must agree with to be resumed. */
function fingerprint(opts: TrainOptions): Record<string, string> {
  return {
    configHash: sha256([canonicalJson(opts.config)]),
    recipeHash: sha256([canonicalJson(opts.recipe)]),
    // A source kept out of distillation adds a marker, so the fingerprints of runs without one stay as they were.
    dataHash: sha256(opts.sources.flatMap((s) => [s.name, String(s.weight), String(s.docs.length), ...s.docs, ...(s.distill === false ? ['no-distill'] : [])])),
    initDigest: weightsDigest(opts.init),
    referenceDigest: opts.reference ? weightsDigest(opts.reference) : 'none',
    // Only when present, so checkpoints of runs without a teacher keep their fingerprint.
    ...(opts.teacher ? { teacherDigest: sha256([canonicalJson(opts.teacher.config), weightsDigest(opts.teacher.weights)]) } : {}),
  };
}

const FINGERPRINT_LABELS: Record<string, string> = {
  configHash: 'model config',
  recipeHash: 'recipe',
  dataHash: 'training data',
  initDigest: 'initial weights',
  referenceDigest: 'reference weights',
  teacherDigest: 'teacher',
};

function validateRecipe(r: Recipe): void {
  const positiveInt = (k: 'steps' | 'batchSize') => {
    if (!Number.isInteger(r[k]) || r[k] < 1) throw new InvalidRecipeError(`recipe: ${k} must be a positive integer, got ${r[k]}`);
  };
  positiveInt('steps');
  positiveInt('batchSize');
  if (!Number.isInteger(r.warmupSteps) || r.warmupSteps < 0) {
    throw new InvalidRecipeError(`recipe: warmupSteps must be a non-negative integer, got ${r.warmupSteps}`);
  }
  for (const k of ['learningRate', 'weightDecay', 'gradClip', 'l2Pull'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new InvalidRecipeError(`recipe: ${k} must be a non-negative number, got ${r[k]}`);
  }
  if (r.minLearningRate !== undefined && !(r.minLearningRate >= 0 && r.minLearningRate <= r.learningRate)) {
    throw new InvalidRecipeError(`recipe: minLearningRate must be between 0 and learningRate, got ${r.minLearningRate}`);
  }
  if (r.distillTemperature !== undefined && !(Number.isFinite(r.distillTemperature) && r.distillTemperature > 0)) {
    throw new InvalidRecipeError(`recipe: distillTemperature must be a positive number, got ${r.distillTemperature}`);
  }
  if (r.distillWeight !== undefined && !(r.distillWeight >= 0 && r.distillWeight <= 1)) {
    throw new InvalidRecipeError(`recipe: distillWeight must be between 0 and 1, got ${r.distillWeight}`);
  }
  if (!Number.isInteger(r.seed)) throw new InvalidRecipeError(`recipe: seed must be an integer, got ${r.seed}`);
}

/** Loss-curve bookkeeping, saved in checkpoints so a resumed run reports the same curve. */
interface LossLog {
  curve: number[];
  sum: number;
  count: number;
}

/** A decoded checkpoint: the step it was taken after, the weights then, the AdamW moments, metadata. */
export interface Checkpoint {
  step: number;
  config: ModelConfig;
  weights: Weights;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  metadata: Record<string, string>;
}

/** Decodes a checkpoint written by trainModel (e.g. to keep the weights of a cancelled run); throws if it is not one. */
export function readCheckpoint(bytes: Uint8Array): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointMismatchError(`checkpoint format ${JSON.stringify(metadata.format)} is not ${CHECKPOINT_FORMAT}`);
  }
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new CheckpointMismatchError(`checkpoint step ${metadata.step} is invalid`);
  const config = validateConfig(JSON.parse(metadata.config ?? 'null'));
  const weights: Weights = new Map();
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    if (name.startsWith(MOMENT1)) m.set(name.slice(MOMENT1.length), t.data);
    else if (name.startsWith(MOMENT2)) v.set(name.slice(MOMENT2.length), t.data);
    else weights.set(name, t);
  }
  checkWeights(config, weights);
  for (const [name, t] of weights) {
    for (const [prefix, moments] of [
      [MOMENT1, m],
      [MOMENT2, v],
    ] as const) {
      if (moments.get(name)?.length !== t.data.length) {
        throw new CheckpointMismatchError(`checkpoint lacks ${prefix}${name} or it has the wrong size`);
      }
    }
  }
  return { step, config, weights, m, v, metadata };
}

/** Decodes a resume checkpoint and checks that it belongs to this job (same fingerprint). */
function resumeFrom(bytes: Uint8Array, expected: Record<string, string>, steps: number): Checkpoint & { log: LossLog } {
  const checkpoint = readCheckpoint(bytes);
  const differs = Object.keys(expected).filter((k) => checkpoint.metadata[k] !== expected[k]);
  if (differs.length > 0) {
    const what = differs.map((k) => FINGERPRINT_LABELS[k] ?? k).join(', ');
    const verb = differs.length === 1 ? 'differs' : 'differ';
    throw new CheckpointMismatchError(`checkpoint belongs to a different training job: ${what} ${verb}`);
  }
  if (checkpoint.step > steps) throw new CheckpointMismatchError(`checkpoint step ${checkpoint.step} is past ${steps}`);
  const log = JSON.parse(checkpoint.metadata.lossLog ?? '{"curve":[],"sum":0,"count":0}') as LossLog;
  return { ...checkpoint, log };
}

function writeCheckpoint(
  step: number,
  state: { weights: Weights; m: Map<string, Float32Array>; v: Map<string, Float32Array> },
  meta: Record<string, string>,
  log: LossLog,
): Uint8Array {
  const tensors: Weights = new Map();
  for (const [name, p] of state.weights) {
    tensors.set(name, p);
    tensors.set(MOMENT1 + name, { shape: p.shape, data: state.m.get(name)! });
    tensors.set(MOMENT2 + name, { shape: p.shape, data: state.v.get(name)! });
  }
  return encodeSafetensors(tensors, {
    ...meta,
    format: CHECKPOINT_FORMAT,
    step: String(step),
    lossLog: JSON.stringify(log),
  });
}

/** The teacher and distillation settings, checked; undefined when there is no teacher. */
function distillSetup(config: ModelConfig, opts: TrainOptions): { config: ModelConfig; weights: Weights; temperature: number; weight: number } | undefined {
  const { recipe, teacher } = opts;
  if (!teacher) {
    if ((recipe.distillWeight ?? 0) > 0) throw new InvalidRecipeError('recipe: distillWeight is set but no teacher was given');
    return undefined;
  }
  const tc = validateConfig(teacher.config);
  checkWeights(tc, teacher.weights);
  if (tc.vocabSize !== config.vocabSize) {
    throw new InvalidRecipeError(`teacher vocabSize ${tc.vocabSize} differs from the student's ${config.vocabSize}: distillation needs the same tokens`);
  }
  if (tc.context < config.context) {
    throw new InvalidRecipeError(`teacher context ${tc.context} is shorter than the student's ${config.context}`);
  }
  return {
    config: tc,
    weights: teacher.weights,
    temperature: recipe.distillTemperature ?? DISTILL_DEFAULTS.temperature,
    weight: recipe.distillWeight ?? DISTILL_DEFAULTS.weight,
  };
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Trains a model and returns its final weights. Deterministic for a given backend: the same options
 * give the same weights, and a run resumed from one of its checkpoints ends with exactly the weights
 * of an uninterrupted run. Checkpoints are emitted through onCheckpoint; nothing is written to disk.
 */
export async function trainModel(opts: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  await initBackend();
  const config = validateConfig(opts.config);
  const { recipe } = opts;
  validateRecipe(recipe);
  checkWeights(config, opts.init);
  if (opts.reference) checkWeights(config, opts.reference);
  const distill = distillSetup(config, opts);

  const expected = fingerprint(opts);
  // config, recipe and seed are stored readably as well as hashed, for whoever inspects a checkpoint.
  const meta = { ...expected, config: JSON.stringify(config), recipe: canonicalJson(recipe), seed: String(recipe.seed) };
  const resumed = opts.resume ? resumeFrom(opts.resume, expected, recipe.steps) : undefined;
  const start = resumed?.weights ?? opts.init;
  const wallBefore = Number(resumed?.metadata.wallMs ?? 0) || 0;
  const wallSoFar = () => wallBefore + performance.now() - started;

  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of start) params.set(name, { shape: [...t.shape], data: t.data.slice() });
  const { weightDecay, gradClip, l2Pull } = recipe;
  const sampler = new BatchSampler(opts.sources, config.context, recipe.seed);
  // A resumed run keeps the checkpoint's interval, so its curve continues the same series.
  const lossEvery = Number(resumed?.metadata.lossEvery ?? opts.lossEvery ?? Math.max(1, Math.floor(recipe.steps / 100)));
  const log: LossLog = resumed?.log ?? { curve: [], sum: 0, count: 0 };
  const model = LanguageModel.create(config, params);
  // The teacher only runs forward, outside the gradient tape: its variables are not in `variables`.
  const teacher = distill ? LanguageModel.create(distill.config, distill.weights) : undefined;
  const variables = [...model.variables.values()];
  const names = [...model.variables.keys()];
  const tokensPerStep = recipe.batchSize * config.context;

  // Host step: gradients down, JS AdamW on `params`, weights up. Device step: DeviceAdamW on the model's
  // variables, and only the loss scalar comes back each step (the non-finite check needs it at step k).
  const device = opts.deviceStep ?? onDevice();
  const hostOptimizer = device ? undefined : new AdamW(params, { weightDecay, gradClip, l2Pull }, opts.reference);
  const deviceOptimizer = device ? new DeviceAdamW(model.variables, { weightDecay, gradClip, l2Pull }, opts.reference) : undefined;
  if (resumed) {
    if (deviceOptimizer) deviceOptimizer.loadMoments(resumed.m, resumed.v);
    for (const name of hostOptimizer ? params.keys() : []) {
      hostOptimizer!.m.get(name)!.set(resumed.m.get(name)!);
      hostOptimizer!.v.get(name)!.set(resumed.v.get(name)!);
    }
  }
  /** Weights and moments as they are now, for a checkpoint or the result. */
  const snapshot = (): { weights: Weights; m: Map<string, Float32Array>; v: Map<string, Float32Array> } => {
    if (hostOptimizer) return { weights: params, m: hostOptimizer.m, v: hostOptimizer.v };
    return { weights: model.exportWeights(), ...deviceOptimizer!.readMoments() };
  };

  let step = resumed?.step ?? 0;
  let stopped = false;
  let lastReport = { time: performance.now(), step };
  let finalWeights: Weights | undefined;
  try {
    while (step < recipe.steps) {
      if (opts.shouldStop?.()) {
        stopped = true;
        break;
      }
      const t = step + 1;
      const { ids, targets, distill: rowMask } = sampler.batch(t, recipe.batchSize);
      const lr = learningRateAt(t, recipe);
      const soft = teacher ? tf.tidy(() => teacher.teacherProbs(ids, recipe.batchSize, distill!.temperature)) : undefined;
      const { value, grads } = tf.variableGrads(
        () => (soft ? model.distillLoss(ids, targets, recipe.batchSize, soft, distill!.temperature, distill!.weight, sampler.masksDistillation ? rowMask : undefined) : model.loss(ids, targets, recipe.batchSize)),
        variables,
      );
      soft?.dispose();
      let loss: number;
      try {
        loss = value.dataSync()[0]!;
        if (!Number.isFinite(loss)) throw new TrainingDivergedError(t, loss);
        if (deviceOptimizer) {
          deviceOptimizer.step(new Map(names.map((name, i) => [name, grads[variables[i]!.name]!])), lr, t);
        } else {
          const gradArrays = new Map<string, Float32Array>();
          names.forEach((name, i) => gradArrays.set(name, grads[variables[i]!.name]!.dataSync() as Float32Array));
          hostOptimizer!.step(gradArrays, lr, t);
        }
      } finally {
        tf.dispose([value, ...Object.values(grads)]);
      }
      if (hostOptimizer) model.loadWeights(params);
      step = t;

      log.sum += loss;
      log.count += 1;
      if (log.count === lossEvery || step === recipe.steps) {
        const mean = log.sum / log.count;
        log.curve.push(mean);
        log.sum = 0;
        log.count = 0;
        const now = performance.now();
        const tokensPerSecond = ((step - lastReport.step) * tokensPerStep * 1000) / Math.max(1e-9, now - lastReport.time);
        lastReport = { time: now, step };
        await opts.onProgress?.({ step, steps: recipe.steps, loss: mean, learningRate: lr, tokensPerSecond });
      }
      if (opts.checkpointEvery && step % opts.checkpointEvery === 0 && opts.onCheckpoint) {
        await opts.onCheckpoint(
          writeCheckpoint(step, snapshot(), { ...meta, lossEvery: String(lossEvery), wallMs: String(Math.round(wallSoFar())) }, log),
          step,
        );
      }
      // Let timers and I/O run (heartbeats, cancellation): the step itself is synchronous.
      await yieldToEventLoop();
    }
    finalWeights = snapshot().weights;
  } finally {
    deviceOptimizer?.dispose();
    model.dispose();
    teacher?.dispose();
  }

  const tokens = step * tokensPerStep;
  const elapsed = performance.now() - started;
  const weights: Weights = new Map();
  for (const [name, p] of finalWeights) weights.set(name, { shape: p.shape, data: p.data });
  return {
    weights,
    steps: step,
    stopped,
    finalLoss: log.curve.at(-1) ?? (log.count > 0 ? log.sum / log.count : Number.NaN),
    lossCurve: log.curve,
    lossEvery,
    tokens,
    flops: tokens * flopsPerToken(config),
    wallMs: elapsed,
    totalWallMs: wallBefore + elapsed,
    backend: backendName(),
  };
}
