/**
 * The RL part of a feedback cycle's gate (workflows/rl-cycle.ts) and how the replay buffer reads a feedback
 * drop (domain/suites.ts DropCache): pure, no services.
 */
import { describe, expect, it } from 'vitest';
import { rlChecks, rlState, rlVersionRecipe, withRlChecks } from '../../workflows/rl-cycle.ts';
import { DropCache } from '../../domain/suites.ts';
import { RL_GUARD_DEFAULTS } from '../../domain/rl-guards.ts';
import { RL_DEFAULTS } from '../../model/rl.ts';
import { DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import type { RlRecord } from '../../activities/types.ts';
import type { GateDecision } from '../../schemas/contracts/gate.ts';

const passingLine: GateDecision = { verdict: 'pass', suites: [{ suite: 'prose', metric: 'loss', candidate: 2, champion: 2, bound: 2.1, pass: true, reason: 'ok' }], summary: 'passed all 1 suites' };

function record(checks: RlRecord['checks'], reasons: string[] = []): RlRecord {
  return {
    recipe: { ...RL_DEFAULTS, steps: 10, seed: 1 },
    guard: { ...RL_GUARD_DEFAULTS, klBudget: 0.5 },
    checks,
    curve: [],
    stoppedBy: 'steps',
    finalKl: checks.at(-1)!.kl,
    verdict: { accept: reasons.length === 0, reasons },
    rewardStats: {},
  };
}

describe('the rl gate checks', () => {
  it('passes a run whose held-out reward rose with gold, within the KL budget, and names the numbers', () => {
    const rl = record([
      { step: 0, reward: 0.2, gold: 0.2, kl: 0 },
      { step: 5, reward: 0.5, gold: 0.45, kl: 0.1 },
    ]);
    const d = withRlChecks(passingLine, rl);
    expect(d.verdict).toBe('pass');
    expect(d.suites.map((s) => s.suite)).toEqual(['prose', 'rl:reward', 'rl:gold', 'rl:kl', 'rl:over-optimisation']);
    expect(d.summary).toContain('RL passed: held-out reward 0.200 -> 0.500');
    expect(d.suites.find((s) => s.suite === 'rl:kl')!.reason).toBe('KL to the released version 0.1000 within the budget 0.5 (stopped by steps after 5 steps)');
  });

  it('fails on each RL condition alone, with the failing check named, even when every suite passed', () => {
    const flat = withRlChecks(passingLine, record([{ step: 0, reward: 0.4, gold: 0.4, kl: 0 }, { step: 5, reward: 0.4, gold: 0.4, kl: 0.1 }], ['held-out reward did not rise']));
    expect(flat.verdict).toBe('fail');
    expect(flat.summary).toContain('rl:reward: held-out reward 0.400 -> 0.400 (did not rise');
    const gold = withRlChecks(passingLine, record([{ step: 0, reward: 0.2, gold: 0.6, kl: 0 }, { step: 5, reward: 0.3, gold: 0.5, kl: 0.1 }], ['gold fell']));
    expect(gold.summary).toContain('rl:gold: held-out gold 0.600 -> 0.500 (fell past the tolerance 0.05');
    const kl = withRlChecks(passingLine, record([{ step: 0, reward: 0.2, gold: 0.2, kl: 0 }, { step: 5, reward: 0.5, gold: 0.5, kl: 0.7 }], ['KL over']));
    expect(kl.summary).toContain('rl:kl: KL to the released version 0.7000 over the budget 0.5');
    const over = 'over-optimisation: held-out reward 0.000 -> 1.000 while gold 0.000 -> 0.000 for 2 consecutive checks (steps 3, 6)';
    const hacked = withRlChecks(passingLine, record([{ step: 0, reward: 0, gold: 0, kl: 0 }, { step: 3, reward: 1, gold: 0, kl: 0.1 }, { step: 6, reward: 1, gold: 0, kl: 0.1 }], [over]));
    expect(hacked.verdict).toBe('fail');
    expect(rlChecks(record([{ step: 0, reward: 0, gold: 0, kl: 0 }, { step: 6, reward: 1, gold: 0, kl: 0.1 }], [over])).find((c) => c.suite === 'rl:over-optimisation')).toMatchObject({ pass: false, reason: over });
  });

  it('adds rl:ratings when the feedback had held-out ratings, and fails on falling agreement alone', () => {
    const up = withRlChecks(passingLine, record([{ step: 0, reward: 0.2, gold: 0.2, kl: 0, ratings: 0.5 }, { step: 5, reward: 0.5, gold: 0.5, kl: 0.1, ratings: 0.75 }]));
    expect(up.verdict).toBe('pass');
    expect(up.suites.at(-1)).toMatchObject({ suite: 'rl:ratings', candidate: 0.75, champion: 0.5, bound: 0.45, pass: true });
    expect(up.summary).toContain('agreement with the held-out ratings 0.500 -> 0.750 (within the tolerance 0.05');
    const down = withRlChecks(passingLine, record([{ step: 0, reward: 0.2, gold: 0.2, kl: 0, ratings: 0.5 }, { step: 5, reward: 0.5, gold: 0.5, kl: 0.1, ratings: 0.25 }], ['ratings fell']));
    expect(down.verdict).toBe('fail');
    expect(down.summary).toContain('rl:ratings: agreement with the held-out ratings 0.500 -> 0.250 (fell past the tolerance 0.05');
  });

  it('a failing suite fails the candidate whatever the RL checks say', () => {
    const failingLine: GateDecision = { ...passingLine, verdict: 'fail', summary: 'failed on prose' };
    expect(withRlChecks(failingLine, record([{ step: 0, reward: 0.2, gold: 0.2, kl: 0 }, { step: 5, reward: 0.5, gold: 0.5, kl: 0.1 }])).verdict).toBe('fail');
  });

  it('records every RL field with the version recipe (seed stays the line recipe field) and shows the curves', () => {
    const rl = record([{ step: 0, reward: 0.2, gold: 0.2, kl: 0 }, { step: 5, reward: 0.5, gold: 0.5, kl: 0.1 }]);
    const recipe = rlVersionRecipe(DEFAULT_RECIPE, rl);
    expect(recipe.rl).toMatchObject({ steps: 10, samplesPerPrompt: RL_DEFAULTS.samplesPerPrompt, klCoef: RL_DEFAULTS.klCoef, klBudget: RL_DEFAULTS.klBudget, clip: RL_DEFAULTS.clip });
    expect(recipe.rl).not.toHaveProperty('seed');
    expect(rlState(rl)).toMatchObject({ klBudget: 0.5, finalKl: 0.1, stoppedBy: 'steps', checks: rl.checks });
  });
});

describe('a feedback drop in the replay buffer', () => {
  const store = (text: string) => ({ get: async () => new TextEncoder().encode(text) });
  it('reads as a drop with no text (it adds nothing to replay or suites)', async () => {
    const fb = '{"prompt":"a","verifier":{"kind":"exact","answer":"x"}}\n{"prompt":"b","completion":"y","reward":1}\n';
    expect(await new DropCache(store(fb)).get('d'.repeat(64))).toEqual({ format: 'jsonl', train: [], heldOut: [], probes: [] });
  });
  it('still refuses a file that is neither, with the text drop error', async () => {
    await expect(new DropCache(store('{"text": 1}\n')).get('e'.repeat(64))).rejects.toThrow(/line 1/);
  });
});
