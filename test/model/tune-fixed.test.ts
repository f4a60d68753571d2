/** bench:tune's fixed-horizon arms (bench/tune.ts): the default recipe at another horizon, on its own chain. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { initWeights } from '../../model/transformer.ts';
import { streamScenario } from '../../bench/scenario.ts';
import { dropFromBytes } from '../../bench/stream.ts';
import { type TuneResult, runTune } from '../../bench/tune.ts';
import { evaluateGate } from '../../workflows/gate.ts';
import { DEFAULT_GATE_RULES } from '../../schemas/defaults.ts';
import { GateRules } from '../../schemas/io.ts';

const config = preset('tiny', { context: 64 });
const recipe = { steps: 8, batchSize: 4, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 2, weightDecay: 0.01, gradClip: 1 };
const rules = GateRules.parse(DEFAULT_GATE_RULES);

describe('runTune with fixed horizons', () => {
  let r: TuneResult;
  beforeAll(async () => {
    await initBackend({ force: 'wasm' });
    const s = streamScenario(3, { drops: 2, productsPerDrop: 2, paragraphs: 2, withLoad: 'none' });
    const read = (d: { name: string; content: string }) => dropFromBytes(new TextEncoder().encode(d.content), d.name);
    r = await runTune({
      config,
      start: initWeights(config, 1),
      drops: s.drops.map(read),
      base: read(s.base),
      recipe,
      knobs: { replayRatio: 0.5, replayBudget: 100, l2Pull: 0 },
      gate: (suites, candidate, champion) => evaluateGate({ rules, suites, candidate, champion }),
      budgetFactor: 0.5,
      fixed: [4, 8],
    });
  }, 120_000);

  it('charges each arm its own steps and names every drop', () => {
    expect(r.fixed.map((f) => f.steps)).toEqual([4, 8]);
    expect(r.fixed[0]!.flops * 2).toBeCloseTo(r.defaultFlops);
    expect(r.fixed[0]!.ratio).toBeCloseTo(0.5);
    expect(r.fixed.every((f) => f.perDrop.map((p) => p.drop).join() === r.perDrop.map((p) => p.drop).join())).toBe(true);
    expect(r.fixed.every((f) => f.passed === f.perDrop.filter((p) => p.pass).length)).toBe(true);
  });

  it('at the default horizon trains exactly what the default recipe trains', () => {
    const same = r.fixed[1]!;
    expect(same.flops).toBe(r.defaultFlops);
    expect(same.perDrop.map((p) => [p.pass, p.margin])).toEqual(r.perDrop.map((p) => [p.defaultPass, p.defaultMargin]));
  });
});
