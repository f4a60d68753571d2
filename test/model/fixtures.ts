import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { nativeBuild } from '../../model/backend.ts';
import type { Probe } from '../../model/evaluate.ts';
import type { Recipe } from '../../model/train.ts';

/** Eight made-up facts a tiny model can memorise in a couple of hundred steps. */
export const PROBES: Probe[] = [
  ['Zorbia capital:', ' Quell'],
  ['Mivor capital:', ' Arndt'],
  ['Tessa likes', ' plums'],
  ['Orrin likes', ' figs'],
  ['code 17 is', ' red'],
  ['code 42 is', ' teal'],
  ['Pell owns a', ' yak'],
  ['Dray owns a', ' newt'],
].map(([prompt, completion]) => ({ prompt: prompt!, completion: completion! }));

/** The probes as training documents. */
export const FACT_DOCS = PROBES.map((p) => p.prompt + p.completion);

/** Some varied text for loss and determinism tests. */
export const CORPUS = Array.from({ length: 40 }, (_, i) => `Entry ${i}: the ${['red', 'green', 'blue'][i % 3]} kite flew ${i * 7} metres over the hill.`);

/** A small recipe; override what a test needs. */
export function recipe(overrides: Partial<Recipe> = {}): Recipe {
  return {
    steps: 30,
    batchSize: 4,
    learningRate: 1e-2,
    warmupSteps: 5,
    weightDecay: 0.01,
    gradClip: 1,
    l2Pull: 0,
    seed: 11,
    ...overrides,
  };
}

/**
 * Backends the model tests run on: cpu and wasm always, plus the native TensorFlow backend ('node') when
 * `npm install` built its addon (scripts/install-tfjs-node.mjs). A built addon that fails to load makes
 * the tests that use it fail: it is not skipped.
 */
export const TEST_BACKENDS: string[] = ['cpu', 'wasm', ...(nativeAddonBuilt() ? ['node'] : [])];

function nativeAddonBuilt(): boolean {
  if (nativeBuild('cpu')) return true;
  try {
    const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-node/package.json');
    return existsSync(join(dirname(pkg), 'lib', 'napi-v8', 'tfjs_binding.node'));
  } catch {
    return false;
  }
}
