/**
 * AdamW over plain float32 arrays. The optimiser state lives in JS, not in tensors: the update is a
 * few hundred thousand multiply-adds (cheaper than hundreds of small tfjs dispatches on wasm), the
 * global-norm reduction is a float64 sum in a fixed order (deterministic on every backend), and the
 * moments serialise straight into a checkpoint. DeviceAdamW below is the same update as tensor ops, for
 * native backends, where the host round trip is what costs.
 */
import * as tf from '@tensorflow/tfjs';

/** Hyper-parameters of one AdamW step. */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay (AdamW), applied to matrices only: not to biases and norm gains. */
  weightDecay: number;
  /** Clip the global gradient norm to this value; 0 or Infinity disables. */
  gradClip: number;
  /** Strength of the L2 pull toward `reference`: adds l2Pull·(θ - θref) to the gradient. */
  l2Pull: number;
}

/** One named parameter: shape and values (updated in place). */
export interface Param {
  shape: number[];
  data: Float32Array;
}

/** AdamW state for a fixed set of named parameters. */
export class AdamW {
  readonly m = new Map<string, Float32Array>();
  readonly v = new Map<string, Float32Array>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;

  constructor(
    readonly params: Map<string, Param>,
    private readonly options: AdamWOptions,
    private readonly reference?: Map<string, { data: Float32Array }>,
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    // 0.95 rather than 0.999: the usual choice for language models, steadier with small batches.
    this.beta2 = options.beta2 ?? 0.95;
    this.epsilon = options.epsilon ?? 1e-8;
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.data.length));
      this.v.set(name, new Float32Array(p.data.length));
      const ref = reference?.get(name);
      if (reference && (!ref || ref.data.length !== p.data.length)) {
        throw new Error(`reference weights: tensor ${name} is missing or has a different size`);
      }
    }
  }

  /**
   * Applies update number `t` (1-based, for bias correction) with learning rate `lr`; `grads` holds
   * the loss gradient per parameter. Returns the global gradient norm before clipping.
   */
  step(grads: Map<string, Float32Array>, lr: number, t: number): number {
    const { weightDecay, gradClip, l2Pull } = this.options;
    const pull = this.reference && l2Pull > 0 ? l2Pull : 0;
    // The pull is part of the objective (loss + l2Pull/2·|θ - θref|²), so it is added before clipping.
    const total = new Map<string, Float32Array>();
    let sumSq = 0;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g || g.length !== p.data.length) throw new Error(`gradient for ${name} is missing or has a different size`);
      let full = g;
      if (pull > 0) {
        const ref = this.reference!.get(name)!.data;
        full = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) full[i] = g[i]! + pull * (p.data[i]! - ref[i]!);
      }
      for (let i = 0; i < full.length; i++) sumSq += full[i]! * full[i]!;
      total.set(name, full);
    }
    const norm = Math.sqrt(sumSq);
    const clip = gradClip > 0 && norm > gradClip ? gradClip / norm : 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const correction1 = 1 - b1 ** t;
    const correction2 = 1 - b2 ** t;
    for (const [name, p] of this.params) {
      const g = total.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = p.shape.length >= 2 ? lr * weightDecay : 0;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]! * clip;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i]! - decay * w[i]! - (lr * (mi / correction1)) / (Math.sqrt(vi / correction2) + this.epsilon);
      }
    }
    return norm;
  }
}

/**
 * The same AdamW on the device: parameters, moments and the reference live in tf.Variables/tensors, and a
 * step is tensor ops only (the L2 pull, the global norm and its clip, the moment updates, decoupled decay).
 * Nothing is read back: on a native backend the old round trip (every gradient down, every weight up, per
 * step) cost more than the step's matmuls. The learning rate and bias corrections are computed in float64
 * on the host and uploaded as three scalars (an upload, not a sync). The arithmetic is float32, so results
 * agree with AdamW above to float32 rounding, not bit for bit; on one backend they are deterministic
 * (fixed reduction order: per-tensor sums of squares added in parameter order).
 */
export class DeviceAdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly reference = new Map<string, tf.Tensor>();

  /** `params`: the model's variables by name (updated in place); `reference`: weights for the L2 pull. */
  constructor(
    readonly params: ReadonlyMap<string, tf.Variable>,
    private readonly options: AdamWOptions,
    reference?: Map<string, { data: Float32Array }>,
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.epsilon = options.epsilon ?? 1e-8;
    for (const [name, p] of params) {
      this.m.set(
        name,
        tf.tidy(() => tf.variable(tf.zeros(p.shape), false)),
      );
      this.v.set(
        name,
        tf.tidy(() => tf.variable(tf.zeros(p.shape), false)),
      );
      if (reference && options.l2Pull > 0) {
        const ref = reference.get(name);
        if (!ref || ref.data.length !== p.size) throw new Error(`reference weights: tensor ${name} is missing or has a different size`);
        this.reference.set(name, tf.tensor(ref.data, p.shape, 'float32'));
      }
    }
  }

  /** Overwrites the moments (resuming from a checkpoint). */
  loadMoments(m: Map<string, Float32Array>, v: Map<string, Float32Array>): void {
    for (const [name, p] of this.params) {
      tf.tidy(() => {
        this.m.get(name)!.assign(tf.tensor(m.get(name)!, p.shape, 'float32'));
        this.v.get(name)!.assign(tf.tensor(v.get(name)!, p.shape, 'float32'));
      });
    }
  }

  /** Reads the moments back (for a checkpoint): fresh arrays. */
  readMoments(): { m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
    const read = (vars: Map<string, tf.Variable>) => new Map([...vars].map(([name, x]) => [name, new Float32Array(x.dataSync() as Float32Array)]));
    return { m: read(this.m), v: read(this.v) };
  }

  /** Applies update `t` (1-based) with learning rate `lr`; `grads` by parameter name. Disposes nothing it was given. */
  step(grads: Map<string, tf.Tensor>, lr: number, t: number): void {
    const { weightDecay, gradClip, l2Pull } = this.options;
    const b1 = this.beta1;
    const b2 = this.beta2;
    tf.tidy(() => {
      const total = new Map<string, tf.Tensor>();
      let sumSq: tf.Tensor | undefined;
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (!g || g.size !== p.size) throw new Error(`gradient for ${name} is missing or has a different size`);
        const ref = this.reference.get(name);
        // The pull is part of the objective (loss + l2Pull/2·|θ - θref|²), so it is added before clipping.
        // One parameter's temporaries at a time (inner tidies): kept until the step ends, a 135M-parameter model's
        // squares, moments and updates held ~5 GB more at the peak.
        const full = ref ? tf.tidy(() => tf.add(g, tf.mul(tf.sub(p, ref), l2Pull))) : g;
        total.set(name, full);
        const s = tf.tidy(() => tf.sum(tf.square(full)));
        sumSq = sumSq ? tf.add(sumSq, s) : s;
      }
      // clip = min(1, gradClip / norm); a zero norm gives +Infinity / min -> 1, never NaN.
      const clip = gradClip > 0 && Number.isFinite(gradClip) ? tf.minimum(1, tf.div(gradClip, tf.sqrt(sumSq!))) : tf.scalar(1);
      // Host float64 -> three scalars: step size with the first bias correction folded in, and the second.
      const stepSize = tf.scalar(lr / (1 - b1 ** t));
      const correction2 = tf.scalar(1 - b2 ** t);
      for (const [name, p] of this.params) {
        const full = total.get(name)!;
        tf.tidy(() => {
          const g = tf.mul(full, clip);
          const m = this.m.get(name)!;
          const v = this.v.get(name)!;
          const mi = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
          const vi = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
          m.assign(mi);
          v.assign(vi);
          const update = tf.div(tf.mul(mi, stepSize), tf.add(tf.sqrt(tf.div(vi, correction2)), this.epsilon));
          const decay = p.shape.length >= 2 ? lr * weightDecay : 0;
          p.assign(tf.sub(decay > 0 ? tf.mul(p, 1 - decay) : p, update));
        });
        if (full !== grads.get(name)) full.dispose(); // the pulled gradient is ours; the caller's stays theirs
      }
    });
  }

  /** Frees the moments and the reference (not the parameters, which belong to the model). */
  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values(), ...this.reference.values()]);
  }
}
