import { describe, expect, it } from 'vitest';
import { evaluateGate, type GateInput } from '../../workflows/gate.ts';
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
