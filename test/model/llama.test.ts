import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import {
  type LlamaConfig,
  LLAMA_PRESETS,
  llamaFlopsPerToken,
  llamaParameterCount,
  llamaPreset,
  llamaWeightShapes,
  validateLlamaConfig,
} from '../../model/llama/config.ts';
import { generateGreedy, generateGreedyRecompute } from '../../model/llama/generate.ts';
import { LlamaModel, type LlamaKvCache, disposeKvCache } from '../../model/llama/model.ts';
import { applyRotary, rmsNorm, rotaryAt, swiglu } from '../../model/llama/ops.ts';
import { LlamaTrainer } from '../../model/llama/train.ts';
import { initLlamaWeights, loadLlamaModel, saveLlamaModel } from '../../model/llama/weights.ts';
import { initWeights } from '../../model/transformer.ts';
import { preset } from '../../model/config.ts';
import { saveModel, weightsDigest } from '../../model/weights.ts';
import { TEST_BACKENDS } from './fixtures.ts';

const tiny = llamaPreset('tiny');
const untied = llamaPreset('tiny', { tiedEmbeddings: false, nKvHeads: 1, context: 16 });

function read(t: tf.Tensor): Float32Array {
  const out = Float32Array.from(t.dataSync());
  t.dispose();
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Token ids in [0, vocab) from a simple formula. */
function tokens(n: number, vocab: number, seed = 1): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 37 + seed * 101 + ((i * i) % 7)) % vocab);
}

describe('llama config', () => {
  it('refuses inconsistent configs, naming the field', () => {
    const bad = (overrides: Record<string, unknown>) => () => validateLlamaConfig({ ...LLAMA_PRESETS.tiny, ...overrides });
    expect(bad({ nKvHeads: 3 })).toThrow(/nHeads 4 is not a multiple of nKvHeads 3/);
    expect(bad({ headDim: 7 })).toThrow(/headDim 7 is odd/);
    expect(bad({ family: 'gpt' })).toThrow(/family must be "llama"/);
    expect(bad({ rotaryLayout: 'pairs' })).toThrow(/rotaryLayout must be "halves".*converted when they are read/);
    expect(bad({ tiedEmbeddings: undefined })).toThrow(/tiedEmbeddings must be true or false/);
    expect(bad({ dModel: 32.5 })).toThrow(/dModel must be a positive integer/);
    expect(bad({ ropeBase: 0 })).toThrow(/ropeBase must be a positive number/);
    expect(bad({ rmsEps: 2 })).toThrow(/rmsEps 2 is not small/);
    expect(bad({ kvHeads: 2 })).toThrow(/unknown field "kvHeads"/);
    expect(() => validateLlamaConfig(null)).toThrow(/expected an object/);
    expect(validateLlamaConfig({ ...LLAMA_PRESETS.tiny })).toEqual(LLAMA_PRESETS.tiny);
  });

  it('counts SmolLM2-135M at 134,515,008 parameters, and FLOPs per token by the GPT convention', () => {
    const smol = llamaPreset('smollm2-135m');
    expect(llamaParameterCount(smol)).toBe(134_515_008);
    const norms = (2 * smol.nLayers + 1) * smol.dModel;
    // Every non-norm weight is a matmul weight once (the tied embedding as the head).
    expect(llamaFlopsPerToken(smol, 128)).toBe(6 * (134_515_008 - norms) + 12 * 30 * 128 * 576);
    expect(llamaWeightShapes(untied).get('head')).toEqual([300, 32]);
    expect(llamaParameterCount(untied)).toBe(llamaParameterCount({ ...untied, tiedEmbeddings: true }) + 300 * 32);
  });
});

describe('llama ops', () => {
  // Gradients of the hand-written ops against tfjs autodiff of the textbook formulas.
  it('rmsNorm, swiglu and rotary have the gradients of their textbook formulas', async () => {
    await initBackend({ force: 'cpu' });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([6, 16], 0, 1, 'float32', 3) as tf.Tensor2D;
      const g = tf.randomNormal([16], 1, 0.2, 'float32', 4) as tf.Tensor1D;
      const dy = tf.randomNormal([6, 16], 0, 1, 'float32', 5) as tf.Tensor2D;
      const plainNorm = (a: tf.Tensor2D, b: tf.Tensor1D) => tf.mul(tf.div(a, tf.sqrt(tf.add(tf.mean(tf.square(a), 1, true), 1e-5))), b);
      const [nx, ng] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5), dy)))([x, g]);
      const [px, pg] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plainNorm(a as tf.Tensor2D, b as tf.Tensor1D), dy)))([x, g]);
      expect(maxAbsDiff(read(tf.clone(rmsNorm(x, g, 1e-5))), read(plainNorm(x, g)))).toBeLessThan(1e-5);
      expect(maxAbsDiff(nx!.dataSync() as Float32Array, px!.dataSync() as Float32Array)).toBeLessThan(1e-5);
      expect(maxAbsDiff(ng!.dataSync() as Float32Array, pg!.dataSync() as Float32Array)).toBeLessThan(1e-5);

      const u = tf.randomNormal([6, 16], 0, 2, 'float32', 6) as tf.Tensor2D;
      const plainSwiglu = (a: tf.Tensor, b: tf.Tensor) => tf.mul(tf.mul(a, tf.sigmoid(a)), b);
      const [sa, sb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiglu(a as tf.Tensor2D, b as tf.Tensor2D), dy)))([x, u]);
      const [qa, qb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plainSwiglu(a, b), dy)))([x, u]);
      expect(maxAbsDiff(sa!.dataSync() as Float32Array, qa!.dataSync() as Float32Array)).toBeLessThan(1e-5);
      expect(maxAbsDiff(sb!.dataSync() as Float32Array, qb!.dataSync() as Float32Array)).toBeLessThan(1e-5);

      // 2 rows x 3 positions x 2 heads of 8, from position 5: rotate_half written out per element.
      const rot = rotaryAt(5, 3, 8, 10000);
      const plainRotary = (a: tf.Tensor) => {
        const cos = tf.concat([rot.cos, rot.cos], 2);
        const sin = tf.concat([rot.sin, rot.sin], 2);
        const a4 = tf.reshape(a, [2, 3, 2, 8]);
        const half = tf.concat([tf.neg(tf.slice(a4, [0, 0, 0, 4], [-1, -1, -1, 4])), tf.slice(a4, [0, 0, 0, 0], [-1, -1, -1, 4])], 3);
        return tf.reshape(tf.add(tf.mul(a4, cos), tf.mul(half, sin)), [6, 16]);
      };
      const rx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(applyRotary(a as tf.Tensor2D, rot, 2, 3, 2, 8), dy)))(x);
      const px2 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(plainRotary(a), dy)))(x);
      expect(maxAbsDiff(read(tf.clone(applyRotary(x, rot, 2, 3, 2, 8))), read(plainRotary(x)))).toBeLessThan(1e-5);
      expect(maxAbsDiff(rx.dataSync() as Float32Array, px2.dataSync() as Float32Array)).toBeLessThan(1e-5);
      // Position 5, frequency index 1 of 4: angle 5 · 10000^(−2/8).
      expect(rot.cos.dataSync()[1]).toBeCloseTo(Math.cos(5 * 10000 ** -0.25), 6);
      // Past the first table's positions (it grows): position 300 + 1, frequency index 3.
      expect(rotaryAt(300, 2, 8, 10000).sin.dataSync()[4 + 3]).toBeCloseTo(Math.sin(301 * 10000 ** -0.75), 6);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('llama model', () => {
  it('seeded init is reproducible and has the config parameter count', () => {
    const w = initLlamaWeights(untied, 9);
    expect(weightsDigest(w)).toBe(weightsDigest(initLlamaWeights(untied, 9)));
    expect(weightsDigest(w)).not.toBe(weightsDigest(initLlamaWeights(untied, 10)));
    expect([...w.values()].reduce((n, t) => n + t.data.length, 0)).toBe(llamaParameterCount(untied));
    expect(w.get('blocks.1.mlp_norm.gain')!.data.every((x) => x === 1)).toBe(true);
  });

  it('computes the same logits on every backend, batched as one row at a time, and frees its tensors', async () => {
    const weights = initLlamaWeights(untied, 4);
    const ids = tokens(2 * 10, untied.vocabSize);
    const results: Float32Array[] = [];
    for (const backend of TEST_BACKENDS) {
      await initBackend({ force: backend });
      const before = tf.memory().numTensors;
      const model = LlamaModel.create(untied, weights);
      results.push(read(tf.tidy(() => model.logits(ids, 2))));
      // Row 1 alone: batching does not mix sequences.
      const row1 = read(tf.tidy(() => model.logits(ids.subarray(10), 1)));
      expect(maxAbsDiff(row1, results.at(-1)!.subarray(10 * untied.vocabSize))).toBeLessThan(1e-5);
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    for (const r of results.slice(1)) expect(maxAbsDiff(r, results[0]!)).toBeLessThan(1e-5);
    expect(results[0]!.length).toBe(20 * untied.vocabSize);
  });

  it('is causal, and refuses sequences past the context', async () => {
    await initBackend({ force: 'wasm' });
    const model = LlamaModel.create(tiny, initLlamaWeights(tiny, 4));
    const a = Int32Array.from([1, 10, 20, 30, 40]);
    const b = Int32Array.from([1, 10, 20, 99, 40]);
    const [la, lb] = [a, b].map((ids) => read(tf.tidy(() => model.logits(ids, 1))));
    const v = tiny.vocabSize;
    expect(Array.from(la!.subarray(0, 3 * v))).toEqual(Array.from(lb!.subarray(0, 3 * v)));
    expect(maxAbsDiff(la!.subarray(3 * v, 4 * v), lb!.subarray(3 * v, 4 * v))).toBeGreaterThan(1e-4);
    expect(() => tf.tidy(() => model.logits(new Int32Array(tiny.context + 1), 1))).toThrow(/exceeds the model context/);
    expect(() => tf.tidy(() => model.logits(Int32Array.of(300), 1))).toThrow(/outside the vocabulary/);
    model.dispose();
  });

  it('keeps the loss finite where a target probability underflows float32 (log-sum-exp minus the target logit)', async () => {
    await initBackend({ force: 'cpu' });
    const w = initLlamaWeights(tiny, 4);
    // Embedding rows of norm ~1e3: logits in the thousands, most probabilities e^-1000 (0 in float32).
    const emb = w.get('tok_emb')!.data;
    for (let i = 0; i < emb.length; i++) emb[i]! *= 3e4;
    const model = LlamaModel.create(tiny, w);
    const ids = tokens(8, tiny.vocabSize);
    const targets = Int32Array.from(ids.subarray(1)).map((x) => x);
    const inputs = ids.subarray(0, 7);
    const logits = read(tf.tidy(() => model.logits(inputs, 1)));
    let want = 0;
    for (let r = 0; r < 7; r++) {
      const row = Array.from(logits.subarray(r * tiny.vocabSize, (r + 1) * tiny.vocabSize));
      const m = Math.max(...row);
      want += m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)) - row[targets[r]!]!;
    }
    want /= 7;
    expect(Math.max(...logits) - Math.min(...logits)).toBeGreaterThan(200);
    const loss = read(tf.tidy(() => model.loss(inputs, targets, 1)))[0]!;
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - want) / want).toBeLessThan(1e-4);
    // A negative target is padding: the mean is over the others.
    const padded = Int32Array.from(targets);
    padded[6] = -100;
    const partial = read(tf.tidy(() => model.loss(inputs, padded, 1)))[0]!;
    const sum = tf.tidy(() => model.lossSum(inputs, padded, 1));
    expect(sum.count).toBe(6);
    expect(partial).toBeCloseTo(read(sum.sum)[0]! / 6, 2);
    model.dispose();
  });
});

describe('llama generation with a key-value cache', () => {
  it.each(TEST_BACKENDS)('gives the logits of the full sequence, step by step, on %s', async (backend) => {
    await initBackend({ force: backend });
    const before = tf.memory().numTensors;
    const model = LlamaModel.create(untied, initLlamaWeights(untied, 5));
    // A trainer may have left recomputation on: the cache path must not depend on it.
    model.recompute = backend === 'wasm';
    const v = untied.vocabSize;
    const batch = 2;
    const time = 9;
    const ids = tokens(batch * time, v, 3);
    const full = read(tf.tidy(() => model.logits(ids, batch)));
    const columns = (from: number, to: number) => {
      const out = new Int32Array(batch * (to - from));
      for (let b = 0; b < batch; b++) out.set(ids.subarray(b * time + from, b * time + to), b * (to - from));
      return out;
    };
    const fullAt = (b: number, t: number) => full.subarray((b * time + t) * v, (b * time + t + 1) * v);
    // Prefill 5 positions (all logits), then 1, 2 and 1 more: the cache's positions and the new ones' line up.
    let cache: LlamaKvCache | undefined;
    let at = 0;
    for (const [n, all] of [
      [5, true],
      [1, false],
      [2, false],
      [1, false],
    ] as const) {
      const step = model.forwardStep(columns(at, at + n), batch, cache, { all });
      cache = step.cache;
      const got = read(step.logits);
      for (let b = 0; b < batch; b++) {
        if (all) for (let t = 0; t < n; t++) expect(maxAbsDiff(got.subarray((b * n + t) * v, (b * n + t + 1) * v), fullAt(b, at + t))).toBeLessThan(1e-4);
        else expect(maxAbsDiff(got.subarray(b * v, (b + 1) * v), fullAt(b, at + n - 1))).toBeLessThan(1e-4);
      }
      at += n;
      expect(cache.length).toBe(at);
      expect(cache.keys[0]!.shape).toEqual([batch * untied.nKvHeads, at, untied.headDim]);
    }
    expect(() => model.forwardStep(new Int32Array(batch * 8), batch, cache)).toThrow(/sequence length 17 exceeds the model context 16/);
    disposeKvCache(cache);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(TEST_BACKENDS)('greedy generation with the cache gives the tokens of recomputing every step, on %s', async (backend) => {
    await initBackend({ force: backend });
    // Larger weights than init's, so the arg-max moves from token to token.
    const w = initLlamaWeights(tiny, 6);
    for (const t of w.values()) if (t.shape.length === 2) for (let i = 0; i < t.data.length; i++) t.data[i]! *= 20;
    const model = LlamaModel.create(tiny, w);
    const before = tf.memory().numTensors;
    const prompt = [1, 17, 42, 5];
    const cached = generateGreedy(model, prompt, { maxTokens: 12 });
    expect(tf.memory().numTensors).toBe(before);
    expect(cached).toEqual(generateGreedyRecompute(model, prompt, { maxTokens: 12 }));
    expect(cached).toHaveLength(12);
    expect(new Set(cached).size).toBeGreaterThan(2);
    // A stop token ends the continuation before it; the context ends it too.
    const stop = cached[3]!;
    expect(generateGreedy(model, prompt, { maxTokens: 12, stop: [stop] })).toEqual(cached.slice(0, cached.indexOf(stop)));
    const long = Array.from({ length: tiny.context - 2 }, (_, i) => (i * 7) % 300);
    expect(generateGreedy(model, long, { maxTokens: 10 })).toHaveLength(3);
    expect(generateGreedyRecompute(model, long, { maxTokens: 10 })).toEqual(generateGreedy(model, long, { maxTokens: 10 }));
    model.dispose();
  });
});

describe('llama training', () => {
  const ids = tokens(4 * 12, tiny.vocabSize, 7);
  // Learn to continue a fixed sequence: targets are the ids shifted by one, the last of each row padding.
  const targets = Int32Array.from(ids, (_, i) => ((i + 1) % 12 === 0 ? -100 : ids[i + 1]!));
  const opts = { weightDecay: 0.01, gradClip: 1, l2Pull: 0 };

  function train(config: LlamaConfig, steps: number, deviceStep: boolean, from = 0, start?: { weights: ReturnType<typeof initLlamaWeights>; m: Map<string, Float32Array>; v: Map<string, Float32Array> }) {
    const model = LlamaModel.create(config, start?.weights ?? initLlamaWeights(config, 2));
    const trainer = new LlamaTrainer(model, { ...opts, deviceStep });
    if (start) trainer.loadMoments(start.m, start.v);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let t = from + 1; t <= from + steps; t++) {
      losses.push(trainer.step(ids, targets, 4, 1e-2, t));
      counts.push(tf.memory().numTensors);
    }
    const out = { losses, counts, weights: model.exportWeights(), ...trainer.readMoments() };
    trainer.dispose();
    model.dispose();
    return out;
  }

  // The device optimiser on native TensorFlow where it is built, else on cpu (slow there, but the same code path).
  it.each([
    ['wasm', false],
    [TEST_BACKENDS.includes('node') ? 'node' : 'cpu', true],
  ] as const)('lowers the loss with AdamW on %s (device step: %s), tensors flat, and resumes bit for bit', async (backend, device) => {
    await initBackend({ force: backend });
    const before = tf.memory().numTensors;
    const run = train(tiny, 24, device);
    expect(tf.memory().numTensors).toBe(before);
    expect(new Set(run.counts).size).toBe(1);
    expect(run.losses[0]!).toBeGreaterThan(5); // ~ln(300) at init
    expect(run.losses.at(-1)!).toBeLessThan(run.losses[0]! * 0.5);
    // 10 steps, then a fresh model and trainer from those weights and moments for 14 more: the same weights.
    const first = train(tiny, 10, device);
    const rest = train(tiny, 14, device, 10, first);
    expect(weightsDigest(rest.weights)).toBe(weightsDigest(run.weights));
    expect(rest.losses).toEqual(run.losses.slice(10));
  });

  it.each(TEST_BACKENDS)('recomputing blocks in the backward pass gives the same loss and gradients on %s', async (backend) => {
    await initBackend({ force: backend });
    const model = LlamaModel.create(untied, initLlamaWeights(untied, 8));
    const vars = [...model.variables.values()];
    const grads = () => {
      const { value, grads: g } = tf.variableGrads(() => model.loss(ids.subarray(0, 24), targets.subarray(0, 24), 2), vars);
      const out = [read(value), ...vars.map((v) => read(g[v.name]!))];
      return out;
    };
    const before = tf.memory().numTensors;
    const plain = grads();
    model.recompute = true;
    const recomputed = grads();
    expect(tf.memory().numTensors).toBe(before);
    expect(recomputed[0]![0]).toBe(plain[0]![0]);
    plain.forEach((g, i) => expect(maxAbsDiff(recomputed[i]!, g), `tensor ${i}`).toBeLessThan(1e-6));
    model.dispose();
  });

  it('saves and loads a model file that says its family, and refuses a GPT file', () => {
    const weights = initLlamaWeights(untied, 3);
    const bytes = saveLlamaModel(untied, weights, { tokenizer: 'test' });
    const back = loadLlamaModel(bytes);
    expect(back.config).toEqual(untied);
    expect(back.metadata).toMatchObject({ format: 'perennial-model/1', family: 'llama', tokenizer: 'test' });
    expect(JSON.parse(back.metadata.config!)).toEqual(untied);
    expect(weightsDigest(back.weights)).toBe(weightsDigest(weights));
    const gpt = preset('tiny');
    expect(() => loadLlamaModel(saveModel(gpt, initWeights(gpt, 1)))).toThrow(/family is "gpt", not "llama"/);
    weights.delete('head');
    expect(() => saveLlamaModel(untied, weights)).toThrow(/missing tensor head/);
  });
});
