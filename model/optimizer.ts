/**
 * AdamW over plain float32 arrays. The optimiser state lives in JS, not in tensors: the update is a
 * few hundred thousand multiply-adds (cheaper than hundreds of small tfjs dispatches on wasm), the
 * global-norm reduction is a float64 sum in a fixed order (deterministic on every backend), and the
 * moments serialise straight into a checkpoint.
 */

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
