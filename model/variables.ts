/** Moving named weights between host arrays and a model's tfjs variables, for every model family. */
import * as tf from '@tensorflow/tfjs';
import type { Weights } from './weights.ts';

/** Copies the variables out of the backend (fresh arrays, safe to keep after the variables are disposed). */
export function readVariables(variables: ReadonlyMap<string, tf.Variable>): Weights {
  const out: Weights = new Map();
  // dataSync may return the backend's own buffer (cpu); copy so later training cannot change it.
  for (const [name, v] of variables) out.set(name, { shape: [...v.shape], data: new Float32Array(v.dataSync() as Float32Array) });
  return out;
}

/** Overwrites every variable with the weight of its name; the caller has checked the weights fit the config. */
export function assignVariables(variables: ReadonlyMap<string, tf.Variable>, weights: Weights): void {
  for (const [name, v] of variables) {
    const w = weights.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(w.data, w.shape, 'float32')));
  }
}
