/**
 * The embedded SmolLM2-135M-Instruct (Q4_1 GGUF) through the Llama decoder, where the file is installed
 * (PERENNIAL_SMOLLM_GGUF, or under .tools/ up to four folders deep); skipped cleanly elsewhere. The expected tokens
 * are MODELS-NOTES.md's, from a NumPy forward pass over the tensors as gguf-py dequantises them.
 */
import { type Dirent, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { LLAMA_PRESETS } from '../../model/llama/config.ts';
import { generateGreedy } from '../../model/llama/generate.ts';
import { loadLlamaGGUF } from '../../model/llama/load.ts';
import { LlamaModel } from '../../model/llama/model.ts';
import { TEST_BACKENDS } from './fixtures.ts';

function findSmolLM(): string | undefined {
  const name = 'SmolLM2-135M-Instruct.Q4_1.gguf';
  if (process.env.PERENNIAL_SMOLLM_GGUF) return process.env.PERENNIAL_SMOLLM_GGUF;
  const walk = (dir: string, depth: number): string | undefined => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return undefined;
    }
    for (const e of entries) if (e.isFile() && e.name === name) return join(dir, e.name);
    if (depth === 0) return undefined;
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const found = walk(join(dir, e.name), depth - 1);
      if (found) return found;
    }
    return undefined;
  };
  return walk(join(import.meta.dirname, '../../.tools'), 4);
}
const smollm = findSmolLM();

describe.skipIf(smollm === undefined)('SmolLM2-135M-Instruct through the Llama decoder', () => {
  it('continues "The capital of France is" greedily as the NumPy reference does', async () => {
    // Native TensorFlow where it is built; wasm works too, at about three times the time.
    await initBackend({ force: TEST_BACKENDS.includes('node') ? 'node' : 'wasm' });
    const { config, weights } = loadLlamaGGUF(smollm!);
    expect(config).toEqual({ ...LLAMA_PRESETS['smollm2-135m'], rmsEps: Math.fround(1e-5) });
    const model = LlamaModel.create(config, weights);
    weights.clear();
    const before = tf.memory().numTensors;
    try {
      const tokens = generateGreedy(model, [504, 3575, 282, 4649, 314], { maxTokens: 10 });
      expect(tokens).toEqual([7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34]); // " Paris.\n\nThe answer is: 2"
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});
