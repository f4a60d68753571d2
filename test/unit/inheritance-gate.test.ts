import { describe, expect, it } from 'vitest';
import { combineGates, evaluateGate, evaluateInheritance, type InheritanceInput } from '../../workflows/gate.ts';
import { DEFAULT_GATE_RULES } from '../../schemas/defaults.ts';

const base = (over: Partial<InheritanceInput> = {}): InheritanceInput => ({
  suites: [
    { name: 'faq', kind: 'probe', foundation: false },
    { name: 'docs', kind: 'text', foundation: false },
    { name: 'general', kind: 'text', foundation: true },
  ],
  candidate: { faq: { exactMatch: 0.9, negativeFlips: 1, probes: 50 }, docs: { loss: 2.02 }, general: { loss: 1.9 } },
  old: { faq: { exactMatch: 0.9 }, docs: { loss: 2.0 }, general: { loss: 2.0 } },
  maxRegression: { loss: 0.02, exactMatch: 0.05 },
  maxNegativeFlipRate: 0.02,
  ...over,
});

describe('the inheritance gate', () => {
  it('passes a transfer that keeps every suite and flips at most 2% of the probes, naming each number', () => {
    const d = evaluateInheritance(base());
    expect(d.verdict).toBe('pass');
    expect(d.suites.map((s) => s.suite)).toEqual(['inherit:faq', 'inherit:docs', 'inherit:general', 'inherit:negative-flips']);
    expect(d.suites.at(-1)).toMatchObject({ candidate: 0.02, bound: 0.02, pass: true });
    expect(d.suites.at(-1)!.reason).toBe('negative flip rate 0.0200 (1 of 50 probes) over 1 probe suite(s) (allowed <= 0.0200)');
  });

  it('fails on flipped probes even when exact match stays the same (gains hide losses)', () => {
    const d = evaluateInheritance(base({ candidate: { ...base().candidate, faq: { exactMatch: 0.9, negativeFlips: 2, probes: 50 } } }));
    expect(d.verdict).toBe('fail');
    expect(d.summary).toBe('inheritance failed on inherit:negative-flips');
    expect(d.suites.find((s) => s.suite === 'inherit:faq')!.pass).toBe(true);
  });

  it('holds foundation suites to the old model exactly, application suites to maxRegression', () => {
    const worseGeneral = evaluateInheritance(base({ candidate: { ...base().candidate, general: { loss: 2.01 } } }));
    expect(worseGeneral.suites.find((s) => s.suite === 'inherit:general')).toMatchObject({ pass: false, bound: 2.0 });
    const worseDocs = evaluateInheritance(base({ candidate: { ...base().candidate, docs: { loss: 2.05 } } }));
    expect(worseDocs.suites.find((s) => s.suite === 'inherit:docs')).toMatchObject({ pass: false, bound: 2.04 });
  });

  it('without per-probe counts, uses the drop in exact match as a lower bound and says so', () => {
    const d = evaluateInheritance(base({ candidate: { ...base().candidate, faq: { exactMatch: 0.85 } } }));
    const flips = d.suites.find((s) => s.suite === 'inherit:negative-flips')!;
    expect(flips.candidate).toBeCloseTo(0.05);
    expect(flips.pass).toBe(false);
    expect(flips.reason).toContain('lower bound from exact match');
  });

  it('combines with the line gate: both must pass', () => {
    const line = evaluateGate({
      rules: DEFAULT_GATE_RULES,
      suites: [{ name: 'docs', kind: 'text', isNew: false }],
      candidate: { docs: { loss: 2.0 } },
      champion: { docs: { loss: 2.0 } },
    });
    const failing = evaluateInheritance(base({ candidate: { ...base().candidate, general: { loss: 3 } } }));
    const both = combineGates(line, failing);
    expect(both.verdict).toBe('fail');
    expect(both.summary).toMatch(/^passed all 1 suites against the champion; inheritance failed on inherit:general$/);
  });

  it("checks that a stated share of the new foundation's own gain is kept on its suites, naming each number", () => {
    // base@1 -> base@2 lowered the general loss 2.2 -> 1.8 (a gain of 0.4); the old application model had 2.0.
    const gain = { oldFoundation: { general: { loss: 2.2 } }, newFoundation: { general: { loss: 1.8 } }, minShare: 0.5 };
    const kept = evaluateInheritance(base({ foundationGain: gain }));
    const v = kept.suites.find((s) => s.suite === 'inherit-gain:general')!;
    // 2.0 -> 1.9 is a gain of 0.1: a quarter of the foundation's 0.4, short of half.
    expect(v).toMatchObject({ pass: false, candidate: 1.9, champion: 2.0 });
    expect(v.bound).toBeCloseTo(1.8);
    expect(v.reason).toBe("did not keep 0.2500 of the new foundation's gain (2.2000 -> 1.8000): 2.0000 -> 1.9000 (needed <= 1.8000, share 0.5000)");
    expect(kept.summary).toBe('inheritance failed on inherit-gain:general');
    const enough = evaluateInheritance(base({ foundationGain: gain, candidate: { ...base().candidate, general: { loss: 1.75 } } }));
    expect(enough.verdict).toBe('pass');
    expect(enough.suites.find((s) => s.suite === 'inherit-gain:general')!.reason).toMatch(/^kept 0\.6250 of the new foundation's gain/);
    // Only foundation suites are judged; a share of 0 turns the check off.
    expect(kept.suites.map((s) => s.suite)).not.toContain('inherit-gain:docs');
    expect(evaluateInheritance(base({ foundationGain: { ...gain, minShare: 0 } })).suites.map((s) => s.suite)).not.toContain('inherit-gain:general');
  });

  it('passes the gain check where the new foundation gained nothing, and fails it where a number is missing', () => {
    const none = evaluateInheritance(base({ foundationGain: { oldFoundation: { general: { loss: 1.8 } }, newFoundation: { general: { loss: 1.9 } }, minShare: 0.5 } }));
    expect(none.suites.find((s) => s.suite === 'inherit-gain:general')).toMatchObject({ pass: true, bound: null });
    const missing = evaluateInheritance(base({ foundationGain: { oldFoundation: {}, newFoundation: { general: { loss: 1.9 } }, minShare: 0.5 } }));
    expect(missing.suites.find((s) => s.suite === 'inherit-gain:general')).toMatchObject({ pass: false });
    expect(missing.suites.find((s) => s.suite === 'inherit-gain:general')!.reason).toMatch(/old foundation version/);
  });
});
