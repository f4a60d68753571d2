/** bench:tune's fixed arms (bench/tune.ts): the default recipe at another horizon or batch size, on its own chain. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { initWeights } from '../../model/transformer.ts';
import { streamScenario } from '../../bench/scenario.ts';
import { dropFromBytes } from '../../bench/stream.ts';
import { type TuneOptions, type TuneResult, bothPassed, curveOf, evalTokens, runTune } from '../../bench/tune.ts';
import { evaluateLoss } from '../../model/evaluate.ts';
import { LanguageModel } from '../../model/transformer.ts';
import { evaluateGate } from '../../workflows/gate.ts';
import { DEFAULT_GATE_RULES } from '../../schemas/defaults.ts';
import { GateRules } from '../../schemas/io.ts';

const config = preset('tiny', { context: 64 });
const recipe = { steps: 8, batchSize: 4, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 2, weightDecay: 0.01, gradClip: 1 };
const rules = GateRules.parse(DEFAULT_GATE_RULES);

describe('runTune with fixed horizons', () => {
  let r: TuneResult;
  let curved: TuneResult;
  let warm: TuneResult;
  beforeAll(async () => {
    await initBackend({ force: 'wasm' });
    const s = streamScenario(3, { drops: 2, productsPerDrop: 2, paragraphs: 2, withLoad: 'none' });
    const read = (d: { name: string; content: string }) => dropFromBytes(new TextEncoder().encode(d.content), d.name);
    const options: TuneOptions = {
      config,
      start: initWeights(config, 1),
      drops: s.drops.map(read),
      base: read(s.base),
      recipe,
      knobs: { replayRatio: 0.5, replayBudget: 100, l2Pull: 0 },
      gate: (suites, candidate, champion) => evaluateGate({ rules, suites, candidate, champion }),
      budgetFactor: 0.5,
      fixed: [4, 8, { steps: 8, batchSize: 2 }, { steps: 8, batchSize: 4 }],
    };
    r = await runTune(options);
    curved = await runTune({ ...options, fixed: [], curve: 3 });
    // A sibling line's chosen recipe: 4 steps at twice the rate.
    warm = await runTune({
      ...options,
      fixed: [],
      history: [{ steps: 4, learningRate: 2e-2, minLearningRate: 2e-3, warmupSteps: 1, replayRatio: 0.5, l2Pull: 0 }],
    });
  }, 180_000);

  it('charges each arm its own steps and names every drop', () => {
    expect(r.fixed.map((f) => [f.steps, f.batchSize])).toEqual([
      [4, 4],
      [8, 4],
      [8, 2],
      [8, 4],
    ]);
    expect(r.fixed[0]!.flops * 2).toBeCloseTo(r.defaultFlops);
    expect(r.fixed[0]!.ratio).toBeCloseTo(0.5);
    // Half the batch at the full horizon: trained at that batch size, so half the FLOPs.
    expect(r.fixed[2]!.flops * 2).toBeCloseTo(r.defaultFlops);
    expect(r.fixed.every((f) => f.perDrop.map((p) => p.drop).join() === r.perDrop.map((p) => p.drop).join())).toBe(true);
    expect(r.fixed.every((f) => f.passed === f.perDrop.filter((p) => p.pass).length)).toBe(true);
  });

  it('at the default horizon trains exactly what the default recipe trains', () => {
    // As 8 steps, or as 8 steps at the default's own batch size.
    for (const same of [r.fixed[1]!, r.fixed[3]!]) {
      expect(same.flops).toBe(r.defaultFlops);
      expect(same.perDrop.map((p) => [p.pass, p.margin])).toEqual(r.perDrop.map((p) => [p.defaultPass, p.defaultMargin]));
    }
  });

  it('judges the default recipe along its horizon without changing what it trains', () => {
    expect(r.curve).toBeUndefined();
    const c = curved.curve!;
    expect(c.every).toBe(3);
    expect(c.perDrop.map((d) => d.margins.map((m) => m.step))).toEqual([
      [3, 6, 8],
      [3, 6, 8],
    ]);
    // Resumed from each checkpoint, the default arm ends with exactly the weights of one uninterrupted run.
    expect(curved.perDrop.map((p) => [p.defaultPass, p.defaultMargin, p.defaultFlops])).toEqual(
      r.perDrop.map((p) => [p.defaultPass, p.defaultMargin, p.defaultFlops]),
    );
    expect(c.perDrop.map((d) => [d.pass, d.margins.at(-1)!.margin, d.margins.at(-1)!.pass])).toEqual(
      r.perDrop.map((p) => [p.defaultPass, p.defaultMargin, p.defaultPass]),
    );
    for (const d of c.perDrop) expect(d.firstPassAt).toBe(d.margins.find((m) => m.pass)?.step ?? null);
  });

  it("tries a sibling line's chosen recipe first while the stream has chosen none of its own", () => {
    expect(warm.perDrop[0]!.trials[0]).toMatchObject({ source: 'history', steps: '0-4/4', learningRate: 2e-2 });
    // Without it, the first drop starts with the grid.
    expect(r.perDrop[0]!.trials[0]!.source).toBe('grid');
  });
});

describe('curveOf', () => {
  const d = (drop: string, pass: boolean, ...m: number[]) => ({
    drop,
    pass,
    margins: m.map((margin, j) => ({ step: (j + 1) * 10, margin, pass: margin >= 0 })),
    firstPassAt: null,
  });

  it('finds the first step where every passing update is above every failing one, and what stopping there saves', () => {
    const c = curveOf(10, 30, [d('a', true, -0.9, -0.2, 0.1), d('b', false, -0.5, -0.3, -0.1), d('c', true, -0.4, -0.1, 0.2)], 90, 1);
    // Step 10: -0.9 (passing) is below -0.5 (failing); step 20: -0.2 > -0.3.
    expect(c.separatedAt).toBe(20);
    // One failing update stopped 10 steps early, out of 3 x 30 steps.
    expect(c.ratioIfStoppedThere).toBeCloseTo(80 / 90);
  });

  it('gives null when all drops went one way', () => {
    const c = curveOf(10, 20, [d('a', true, -1, 0.1)], 20, 1);
    expect([c.separatedAt, c.ratioIfStoppedThere]).toEqual([null, null]);
  });
});

describe('bothPassed: the margins drop for drop', () => {
  const p = (defaultPass: boolean, defaultMargin: number, autoPass: boolean, autoMargin: number | null) => ({
    defaultPass,
    defaultMargin,
    autoPass,
    autoMargin,
  });

  it('compares only the drops both passed, and counts where auto is narrower', () => {
    // Auto passes one more drop near 0: its mean over its own passes falls, the drops both passed do not.
    const b = bothPassed([p(true, 0.4, true, 0.4), p(true, 0.1, true, 0.05), p(false, -0.1, true, 0.01), p(true, 0.2, false, -0.3)]);
    expect(b.drops).toBe(2);
    expect(b.default).toBeCloseTo(0.25);
    expect(b.auto).toBeCloseTo(0.225);
    expect(b.narrower).toBe(1);
  });

  it('gives no means when no drop passed both', () => {
    const b = bothPassed([p(true, 0.1, false, null), p(false, -0.2, true, 0.3)]);
    expect([b.drops, b.narrower, Number.isNaN(b.default), Number.isNaN(b.auto)]).toEqual([0, 0, true, true]);
  });
});

describe('evalTokens: what judging an update reads', () => {
  it("counts every held-out token evaluateLoss predicts and every probe's input", async () => {
    await initBackend({ force: 'wasm' });
    const texts = ['a short held-out line', 'x'.repeat(150)];
    const probes = [
      { prompt: 'price of kon:', completion: ' 12' },
      { prompt: 'y'.repeat(80), completion: 'z' },
    ];
    const model = LanguageModel.create(config, initWeights(config, 1));
    try {
      const text = { name: 't', kind: 'text' as const, metric: 'loss' as const, drop: 1, texts, probes: [], superseded: 0 };
      expect(evalTokens([text], config.context)).toBe(evaluateLoss(model, texts).tokens);
      const probe = { name: 'p', kind: 'probe' as const, metric: 'exactMatch' as const, drop: 1, texts: [], probes, superseded: 0 };
      // BOS + prompt + completion, less the last token, cut to the context: 16 and 64.
      expect(evalTokens([probe], config.context)).toBe(16 + 64);
    } finally {
      model.dispose();
    }
  });
});
