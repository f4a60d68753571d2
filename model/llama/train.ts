/**
 * Training steps for the Llama family with the GPT's optimisers (model/optimizer.ts, imported, not copied): AdamW on
 * the host over plain arrays (wasm, cpu) or DeviceAdamW on the variables (native TensorFlow, where the per-step
 * round trip of every gradient and weight is what costs). The schedule, batching, checkpoints and resume are the
 * GPT loop's (model/train.ts) and are not repeated here; see the report of issue 34 for what plugging in takes.
 */
import * as tf from '@tensorflow/tfjs';
import { onDevice } from '../ops.ts';
import { AdamW, type AdamWOptions, DeviceAdamW } from '../optimizer.ts';
import { TrainingDivergedError } from '../train.ts';
import type { Weights } from '../weights.ts';
import type { LlamaModel } from './model.ts';

/** Options of a LlamaTrainer. */
export interface LlamaTrainerOptions extends AdamWOptions {
  /** Weights of the L2 pull (the parent version); needed when l2Pull > 0. */
  reference?: Weights;
  /** Optimiser on the device (default: on native TensorFlow only, as model/train.ts decides). */
  deviceStep?: boolean;
  /**
   * Recompute each block in the backward pass (LlamaModel.recompute): one block's activations in memory instead of
   * every block's. Default: on for models of 8 or more layers, where the activations are the larger part.
   */
  recompute?: boolean;
}

/**
 * AdamW steps on a LlamaModel's variables, in place. While it lives it owns the model's weights (the host optimiser
 * keeps its own copy, taken at construction). dispose() frees the optimiser's state, not the model.
 */
export class LlamaTrainer {
  private readonly variables: tf.Variable[];
  private readonly names: string[];
  private readonly host?: { params: Weights; optimizer: AdamW };
  private readonly device?: DeviceAdamW;

  constructor(
    readonly model: LlamaModel,
    options: LlamaTrainerOptions,
  ) {
    this.variables = [...model.variables.values()];
    this.names = [...model.variables.keys()];
    const { reference, deviceStep, recompute, ...adam } = options;
    model.recompute = recompute ?? model.config.nLayers >= 8;
    if (deviceStep ?? onDevice()) {
      this.device = new DeviceAdamW(model.variables, adam, reference);
    } else {
      const params = model.exportWeights();
      this.host = { params, optimizer: new AdamW(params, adam, reference) };
    }
  }

  /**
   * One update: the mean loss of `ids` -> `targets` (row-major [batch, time]; negative targets are padding), its
   * gradient, AdamW step `t` (1-based) at learning rate `lr`. Returns the loss before the update; throws
   * TrainingDivergedError (leaving the weights as they were) when it is not finite.
   */
  step(ids: Int32Array, targets: Int32Array, batch: number, lr: number, t: number): number {
    const { value, grads } = tf.variableGrads(() => this.model.loss(ids, targets, batch), this.variables);
    try {
      const loss = value.dataSync()[0]!;
      if (!Number.isFinite(loss)) throw new TrainingDivergedError(t, loss);
      if (this.device) {
        this.device.step(new Map(this.names.map((name, i) => [name, grads[this.variables[i]!.name]!])), lr, t);
      } else {
        const arrays = new Map<string, Float32Array>();
        this.names.forEach((name, i) => arrays.set(name, grads[this.variables[i]!.name]!.dataSync() as Float32Array));
        this.host!.optimizer.step(arrays, lr, t);
        this.model.loadWeights(this.host!.params);
      }
      return loss;
    } finally {
      tf.dispose([value, ...Object.values(grads)]);
    }
  }

  /** The AdamW moments by weight name (fresh arrays): with the weights and the step, what a checkpoint holds. */
  readMoments(): { m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
    if (this.device) return this.device.readMoments();
    const copy = (src: Map<string, Float32Array>) => new Map([...src].map(([k, a]) => [k, a.slice()]));
    return { m: copy(this.host!.optimizer.m), v: copy(this.host!.optimizer.v) };
  }

  /** Restores the moments of a checkpoint (resume). */
  loadMoments(m: Map<string, Float32Array>, v: Map<string, Float32Array>): void {
    if (this.device) return this.device.loadMoments(m, v);
    for (const name of this.names) {
      this.host!.optimizer.m.get(name)!.set(m.get(name)!);
      this.host!.optimizer.v.get(name)!.set(v.get(name)!);
    }
  }

  /** Frees the device optimiser's moments (the model's variables stay). */
  dispose(): void {
    this.device?.dispose();
  }
}
