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
    expect(d.suites.at(-1)!.reason).toBe('negative flip rate 0.0200 over 1 probe suite(s) (allowed <= 0.0200)');
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
});
