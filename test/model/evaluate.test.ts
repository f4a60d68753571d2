import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { evaluateLoss, exactMatch, sample } from '../../model/evaluate.ts';
import { trainModel } from '../../model/train.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import type { Weights } from '../../model/weights.ts';
import { FACT_DOCS, PROBES, recipe } from './fixtures.ts';

const config = preset('tiny');
let trained: Weights;

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
  const result = await trainModel({
    config,
    init: initWeights(config, 3),
    sources: [{ name: 'facts', weight: 1, docs: FACT_DOCS }],
    recipe: recipe({ steps: 250, batchSize: 8, learningRate: 1e-2, warmupSteps: 20, weightDecay: 0, seed: 7 }),
  });
  trained = result.weights;
});

function withModel<T>(weights: Weights, f: (m: LanguageModel) => T): T {
  const model = LanguageModel.create(config, weights);
  try {
    return f(model);
  } finally {
    model.dispose();
  }
}

describe('exact match', () => {
  it('is 100% on probes the model memorised and near 0 for an untrained model', () => {
    expect(withModel(trained, (m) => exactMatch(m, PROBES))).toEqual({ accuracy: 1, correct: 8, total: 8, hits: PROBES.map(() => true) });
    expect(withModel(initWeights(config, 3), (m) => exactMatch(m, PROBES)).accuracy).toBeLessThanOrEqual(0.125);
  });

  it('compares every byte: a wrong or longer completion does not match', () => {
    const wrong = PROBES.map((p) => ({ prompt: p.prompt, completion: p.completion.replace(/.$/, '#') }));
    const longer = PROBES.map((p) => ({ prompt: p.prompt, completion: `${p.completion} and more` }));
    expect(withModel(trained, (m) => exactMatch(m, [...wrong, ...longer])).correct).toBe(0);
    // Per-probe hits come back in the order given, though probes are batched by length.
    const mixed = [longer[0]!, PROBES[1]!, wrong[2]!, PROBES[3]!];
    expect(withModel(trained, (m) => exactMatch(m, mixed)).hits).toEqual([false, true, false, true]);
  });

  it('agrees with greedy sampling and does not depend on batching', () => {
    withModel(trained, (m) => {
      for (const p of PROBES) {
        expect(sample(m, p.prompt, { temperature: 0, maxTokens: p.completion.length, seed: 1 })).toBe(p.completion);
      }
      expect(exactMatch(m, PROBES, { batchSize: 3 })).toEqual(exactMatch(m, PROBES));
    });
  });
});

describe('evaluateLoss', () => {
  it('predicts every token after BOS once; an untrained model is near uniform', () => {
    const docs = [...FACT_DOCS, 'x'.repeat(3 * config.context + 5)];
    const report = withModel(initWeights(config, 3), (m) => evaluateLoss(m, docs));
    expect(report.tokens).toBe(docs.reduce((n, d) => n + Buffer.byteLength(d) + 1, 0));
    expect(report.meanLoss).toBeGreaterThan(Math.log(259) - 0.3);
    expect(report.meanLoss).toBeLessThan(Math.log(259) + 0.3);
    expect(report.perplexity).toBeCloseTo(Math.exp(report.meanLoss), 6);
  });

  it('is lower after training on the text, deterministic, and independent of batch size', () => {
    withModel(trained, (m) => {
      const a = evaluateLoss(m, FACT_DOCS);
      expect(a.meanLoss).toBeLessThan(0.5);
      expect(evaluateLoss(m, FACT_DOCS)).toEqual(a);
      expect(evaluateLoss(m, FACT_DOCS, { batchSize: 1 }).meanLoss).toBeCloseTo(a.meanLoss, 4);
    });
  });
});

describe('sample', () => {
  it('is reproducible for a seed and varies with temperature', () => {
    withModel(initWeights(config, 3), (m) => {
      const opts = { temperature: 1.5, maxTokens: 20, seed: 5 };
      const a = sample(m, 'Hello', opts);
      expect(sample(m, 'Hello', opts)).toBe(a);
      expect(sample(m, 'Hello', { ...opts, seed: 6 })).not.toBe(a);
    });
  });

  it('keeps going past the context with a sliding window, and handles probes longer than the context', () => {
    withModel(trained, (m) => {
      const long = 'z'.repeat(2 * config.context);
      expect(() => sample(m, long, { temperature: 1, maxTokens: config.context + 5, seed: 3 })).not.toThrow();
      const report = exactMatch(m, [
        { prompt: long, completion: ' x' },
        { prompt: 'a', completion: 'y'.repeat(config.context + 1) },
        { prompt: 'Tessa likes', completion: '' },
      ]);
      expect(report.total).toBe(3);
      expect(report.correct).toBe(1); // the empty completion; the too-long one cannot match
    });
  });
});

describe('leaks', () => {
  it('evaluation leaves the tensor count unchanged', () => {
    withModel(trained, (m) => {
      const before = tf.memory().numTensors;
      evaluateLoss(m, FACT_DOCS);
      exactMatch(m, PROBES);
      sample(m, 'Tessa', { temperature: 0.8, maxTokens: 40, seed: 2 });
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});
