/** The learning benchmark's fair retraining baselines (bench/fair.ts): cost and equal-quality logic, no training. */
import { describe, expect, it } from 'vitest';
import { type RetrainSearch, compareQuality, fairBaselines, withinTolerance } from '../../bench/fair.ts';

const search = (
  onceFlops: number,
  searchFlops: number,
  em: number,
  loss: number,
): Pick<RetrainSearch, 'flops' | 'once' | 'recipe' | 'stepScale' | 'method' | 'trials'> => ({
  flops: searchFlops,
  once: { steps: 500, flops: onceFlops, wallMs: 1, quality: { finalExactMatch: em, finalLoss: loss } },
  recipe: { learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 10 },
  stepScale: 1,
  method: 'test',
  trials: [],
});

describe('fairBaselines', () => {
  it('states the product against retrain-every and retrain-once, with and without the search charged', () => {
    const product = { strategy: 'default', flops: 100, finalExactMatch: 0.8, finalLoss: 2.0 };
    const every = { flops: 1000, finalExactMatch: 0.81, finalLoss: 2.01 };
    const f = fairBaselines(product, every, search(400, 600, 0.9, 1.9));
    expect(f.retrainEvery.relativeCompute).toBeCloseTo(0.1);
    expect(f.retrainEvery.chargedFlops).toBe(1600);
    expect(f.retrainEvery.relativeComputeCharged).toBeCloseTo(100 / 1600);
    expect(f.retrainEvery.productWithinTolerance).toBe(true);
    // Retrain-once's run is one of the search's trials: charged = the search's FLOPs, not once + search.
    expect(f.retrainOnce.flops).toBe(400);
    expect(f.retrainOnce.chargedFlops).toBe(600);
    expect(f.retrainOnce.relativeCompute).toBeCloseTo(0.25);
    // 0.8 is more than 0.02 below 0.9: not equal quality, and the sentence says so.
    expect(f.retrainOnce.productWithinTolerance).toBe(false);
    expect(f.retrainOnce.sentence).toContain('below tolerance');
    expect(f.retrainEvery.sentence).toContain('within tolerance');
    expect(f.searchFlops).toBe(600);
  });

  it('judges loss relative to the baseline and ignores a metric the baseline lacks', () => {
    expect(withinTolerance({ finalExactMatch: 0.5, finalLoss: 2.05 }, { finalExactMatch: 0.5, finalLoss: 2.0 })).toBe(false);
    expect(withinTolerance({ finalExactMatch: 0.5, finalLoss: 2.03 }, { finalExactMatch: 0.5, finalLoss: 2.0 })).toBe(true);
    expect(withinTolerance({ finalExactMatch: Number.NaN, finalLoss: 1 }, { finalExactMatch: Number.NaN, finalLoss: 1 })).toBe(true);
  });

  it('refuses impossible costs', () => {
    const product = { strategy: 'default', flops: 100, finalExactMatch: 0.8, finalLoss: 2.0 };
    expect(() => fairBaselines(product, { flops: 0, finalExactMatch: 1, finalLoss: 1 }, search(400, 600, 1, 1))).toThrow(/positive/);
    expect(() => fairBaselines(product, { flops: 10, finalExactMatch: 1, finalLoss: 1 }, search(400, 300, 1, 1))).toThrow(/cannot be below/);
  });
});

describe('compareQuality (the retraining search ranks its trials by it)', () => {
  it('prefers higher exact match, then lower loss within the exact-match tolerance', () => {
    const a = { finalExactMatch: 0.6, finalLoss: 2.5 };
    const b = { finalExactMatch: 0.3, finalLoss: 2.0 };
    const c = { finalExactMatch: 0.61, finalLoss: 2.4 };
    expect(compareQuality(a, b)).toBeLessThan(0);
    expect(compareQuality(c, a)).toBeLessThan(0);
    expect([b, a, c].sort((x, y) => compareQuality(x, y))).toEqual([c, a, b]);
  });
});
