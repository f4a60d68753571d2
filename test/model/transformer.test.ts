import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { parameterCount, preset } from '../../model/config.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import { loadModel, saveModel, weightsDigest } from '../../model/weights.ts';

const config = preset('tiny');

async function logitsOn(backend: string, ids: Int32Array): Promise<Float32Array> {
  await initBackend({ force: backend });
  const model = LanguageModel.create(config, initWeights(config, 4));
  const logits = tf.tidy(() => model.logits(ids, 2));
  const out = Float32Array.from(logits.dataSync());
  logits.dispose();
  model.dispose();
  return out;
}

describe('transformer', () => {
  it('seeded init is reproducible and has the config parameter count', () => {
    const w = initWeights(config, 9);
    expect(weightsDigest(w)).toBe(weightsDigest(initWeights(config, 9)));
    expect([...w.values()].reduce((n, t) => n + t.data.length, 0)).toBe(parameterCount(config));
    expect(w.get('blocks.0.ln1.gain')!.data.every((x) => x === 1)).toBe(true);
  });

  it('holds weights bit-identically on cpu and wasm, and through save/load', async () => {
    const weights = initWeights(config, 4);
    for (const backend of ['cpu', 'wasm']) {
      await initBackend({ force: backend });
      const before = tf.memory().numTensors;
      const model = LanguageModel.create(config, loadModel(saveModel(config, weights)).weights);
      expect(weightsDigest(model.exportWeights())).toBe(weightsDigest(weights));
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('computes the same logits on cpu and wasm', async () => {
    const ids = Int32Array.from({ length: 2 * 20 }, (_, i) => (i * 31) % 259);
    const cpu = await logitsOn('cpu', ids);
    const wasm = await logitsOn('wasm', ids);
    expect(cpu.length).toBe(2 * 20 * config.vocabSize);
    let worst = 0;
    for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(cpu[i]! - wasm[i]!));
    expect(worst).toBeLessThan(1e-4);
  });

  it('is causal: a token does not change the logits of earlier positions', async () => {
    await initBackend({ force: 'wasm' });
    const model = LanguageModel.create(config, initWeights(config, 4));
    const a = Int32Array.from([256, 10, 20, 30, 40]);
    const b = Int32Array.from([256, 10, 20, 99, 40]);
    const [la, lb] = [a, b].map((ids) => {
      const t = tf.tidy(() => model.logits(ids, 1));
      const d = Float32Array.from(t.dataSync());
      t.dispose();
      return d;
    });
    const v = config.vocabSize;
    expect(Array.from(la!.subarray(0, 3 * v))).toEqual(Array.from(lb!.subarray(0, 3 * v)));
    expect(la!.subarray(3 * v, 4 * v)).not.toEqual(lb!.subarray(3 * v, 4 * v));
    model.dispose();
  });

  it('rejects sequences longer than the context', async () => {
    await initBackend({ force: 'wasm' });
    const model = LanguageModel.create(config, initWeights(config, 4));
    expect(() => tf.tidy(() => model.logits(new Int32Array(config.context + 1), 1))).toThrow(/exceeds the model context/);
    model.dispose();
  });
});
