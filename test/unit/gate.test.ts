import { describe, expect, it } from 'vitest';
import { L2_INIT_PULL, evaluateGate, interventionRecipe, planInterventions, wantsPlasticity, type GateInput } from '../../workflows/gate.ts';
import { DEFAULT_GATE_RULES } from '../../schemas/defaults.ts';

const rules = {
  ...DEFAULT_GATE_RULES,
  floors: { loss: 4, exactMatch: 0.2 },
  maxRegression: { loss: 0.05, exactMatch: 0.1 },
  minImprovement: { loss: 0.02, exactMatch: 0.05 },
};
const suites: GateInput['suites'] = [
  { name: 'old', kind: 'text', isNew: false },
  { name: 'old-probes', kind: 'probe', isNew: false },
  { name: 'new', kind: 'text', isNew: true },
];
const champion = { old: { loss: 2 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 3 } };

describe('the release gate', () => {
  it('passes a candidate that improves on the new data and holds the old suites', () => {
    const d = evaluateGate({ rules, suites, champion, candidate: { old: { loss: 2.09 }, 'old-probes': { exactMatch: 0.75 }, new: { loss: 2.9 } } });
    expect(d.verdict).toBe('pass');
    expect(d.suites.every((s) => s.pass)).toBe(true);
    expect(d.suites.find((s) => s.suite === 'new')!.bound).toBeCloseTo(2.94);
  });

  it('fails a candidate that regresses an old suite beyond the bound and names it', () => {
    const d = evaluateGate({ rules, suites, champion, candidate: { old: { loss: 2.11 }, 'old-probes': { exactMatch: 0.69 }, new: { loss: 2.5 } } });
    expect(d.verdict).toBe('fail');
    expect(d.summary).toBe('failed on old, old-probes');
    expect(d.suites.find((s) => s.suite === 'old')!.reason).toMatch(/regressed: 2.0000 -> 2.1100/);
  });

  it('fails when the new data did not improve by the minimum', () => {
    const d = evaluateGate({ rules, suites, champion, candidate: { old: { loss: 2 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 2.95 } } });
    expect(d.verdict).toBe('fail');
    expect(d.suites.find((s) => s.suite === 'new')!.reason).toMatch(/did not improve enough/);
  });

  it('never passes a suite with no result, for the candidate or the champion', () => {
    const noCandidate = evaluateGate({ rules, suites, champion, candidate: { old: { loss: 2 }, new: { loss: 2 } } });
    expect(noCandidate.suites.find((s) => s.suite === 'old-probes')).toMatchObject({ pass: false, reason: 'no exactMatch result for the candidate' });
    const nanResult = evaluateGate({ rules, suites, champion, candidate: { old: { loss: NaN }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 2 } } });
    expect(nanResult.verdict).toBe('fail');
    const noChampionResult = evaluateGate({
      rules,
      suites,
      champion: { old: { loss: 2 } },
      candidate: { old: { loss: 2 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 2 } },
    });
    expect(noChampionResult.suites.find((s) => s.suite === 'new')!.reason).toMatch(/no loss result for the champion/);
  });

  it('judges a line with no champion on the floors alone', () => {
    const ok = evaluateGate({ rules, suites, champion: null, candidate: { old: { loss: 3.9 }, 'old-probes': { exactMatch: 0.2 }, new: { loss: 3.99 } } });
    expect(ok.verdict).toBe('pass');
    const low = evaluateGate({ rules, suites, champion: null, candidate: { old: { loss: 4.1 }, 'old-probes': { exactMatch: 0.19 }, new: { loss: 1 } } });
    expect(low.summary).toBe('failed on old, old-probes');
  });

  it('names what a first version was held to, and fails one no better than an untrained model', () => {
    const untrained = { old: { loss: 2 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 3 } };
    const input = { rules, suites, champion: untrained, baseline: 'an untrained model of its shape' };
    const learned = evaluateGate({ ...input, candidate: { old: { loss: 2 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 2.9 } } });
    expect(learned.summary).toBe('passed all 3 suites against an untrained model of its shape');
    const idle = evaluateGate({ ...input, candidate: untrained });
    expect(idle.summary).toBe('failed on new');
  });

  it('applies per-suite overrides and caps the exact-match improvement at 1', () => {
    const strict = { ...rules, suites: { old: { maxRegression: { loss: 0 } } } };
    expect(
      evaluateGate({ rules: strict, suites, champion, candidate: { old: { loss: 2.01 }, 'old-probes': { exactMatch: 0.8 }, new: { loss: 2 } } }).summary,
    ).toBe('failed on old');
    const perfect = evaluateGate({
      rules,
      suites: [{ name: 'p', kind: 'probe', isNew: true }],
      champion: { p: { exactMatch: 0.98 } },
      candidate: { p: { exactMatch: 1 } },
    });
    expect(perfect.verdict).toBe('pass');
  });

  it('fails a line with no suites at all', () => {
    expect(evaluateGate({ rules, suites: [], champion: null, candidate: {} }).verdict).toBe('fail');
  });
});

describe('the plasticity rule minPlasticity', () => {
  const good = { old: { loss: 2.09 }, 'old-probes': { exactMatch: 0.75 }, new: { loss: 2.9 } };

  it('is off by default: a candidate with low plasticity passes, and without a measurement too', () => {
    expect(DEFAULT_GATE_RULES.minPlasticity).toBeUndefined();
    expect(evaluateGate({ rules, suites, champion, candidate: good, plasticity: { ratio: 0.2 } }).verdict).toBe('pass');
    expect(evaluateGate({ rules, suites, champion, candidate: good }).plasticity).toBeUndefined();
  });

  it('fails a candidate whose plasticity ratio is below the bound and names the number', () => {
    const d = evaluateGate({ rules: { ...rules, minPlasticity: 0.9 }, suites, champion, candidate: good, plasticity: { ratio: 0.74 } });
    expect(d.verdict).toBe('fail');
    expect(d.summary).toBe('failed on plasticity 0.7400 (needed >= 0.9000 of a fresh model)');
    expect(d.plasticity).toEqual({ ratio: 0.74, bound: 0.9, pass: false, reason: 'plasticity 0.7400 of a fresh model is below the bound 0.9000' });
  });

  it('passes one at or above the bound, naming the number; fails one with no or a non-finite measurement', () => {
    const r = { ...rules, minPlasticity: 0.9 };
    const ok = evaluateGate({ rules: r, suites, champion, candidate: good, plasticity: { ratio: 1.12 } });
    expect(ok.verdict).toBe('pass');
    expect(ok.plasticity!.reason).toBe('plasticity 1.1200 of a fresh model is within the bound 0.9000');
    const none = evaluateGate({ rules: r, suites, champion, candidate: good });
    expect(none.verdict).toBe('fail');
    expect(none.plasticity!.reason).toBe('no plasticity measured for the candidate');
    expect(evaluateGate({ rules: r, suites, champion, candidate: good, plasticity: { ratio: Number.NaN } }).verdict).toBe('fail');
  });

  it('lists a failing suite and the plasticity failure together', () => {
    const d = evaluateGate({ rules: { ...rules, minPlasticity: 0.9 }, suites, champion, candidate: { ...good, old: { loss: 2.5 } }, plasticity: { ratio: 0.5 } });
    expect(d.summary).toBe('failed on old; plasticity 0.5000 (needed >= 0.9000 of a fresh model)');
  });
});

describe('planInterventions (the plasticity floor)', () => {
  it('applies shrink-and-perturb and a dormant reset only below a set floor', () => {
    expect(planInterventions(undefined, 0.1)).toEqual([]);
    expect(planInterventions(0.9, undefined)).toEqual([]);
    expect(planInterventions(0.9, Number.NaN)).toEqual([]);
    expect(planInterventions(0.9, 0.9)).toEqual([]);
    expect(planInterventions(0.9, 0.89)).toEqual(['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm']);
  });
  it('measures plasticity only on a line that gates on it or defends it', () => {
    expect(wantsPlasticity(rules, {})).toBe(false);
    expect(wantsPlasticity({ ...rules, minPlasticity: 0.8 }, {})).toBe(true);
    expect(wantsPlasticity(rules, { plasticityFloor: 0.8 })).toBe(true);
  });
});

describe('interventionRecipe (what the interventions change in training)', () => {
  it('records the interventions, re-warms, and pulls toward the initial weights at least L2_INIT_PULL', () => {
    const recipe = { l2Pull: 0, rewarm: false, steps: 10 };
    expect(interventionRecipe(recipe, [])).toBe(recipe);
    expect(interventionRecipe(recipe, planInterventions(0.9, 0.5))).toEqual({
      l2Pull: L2_INIT_PULL,
      rewarm: true,
      steps: 10,
      interventions: ['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm'],
      l2Anchor: 'init',
    });
    // A stronger pull of the recipe's own is kept, now toward the initial weights.
    expect(interventionRecipe({ l2Pull: 0.05, rewarm: false }, ['l2-init'])).toEqual({ l2Pull: 0.05, rewarm: false, interventions: ['l2-init'], l2Anchor: 'init' });
  });
});
