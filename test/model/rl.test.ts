import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { rlFlops } from '../../domain/recipe-limits.ts';
import { RL_GUARD_DEFAULTS, overOptimisation, rlVerdict } from '../../domain/rl-guards.ts';
import { verify } from '../../domain/verifiers.ts';
import { initBackend } from '../../model/backend.ts';
import { flopsPerToken, preset } from '../../model/config.ts';
import { RL_DEFAULTS, type RlRecipe, rlInterventions, rlTrain, rlooAdvantages } from '../../model/rl.ts';
import { trainModel } from '../../model/train.ts';
import { initWeights } from '../../model/transformer.ts';
import type { Weights } from '../../model/weights.ts';
import { recipe } from './fixtures.ts';

const config = preset('tiny');
/** Prompts "k<i>=" whose foundation answers are a uniform digit: the RL task is to answer 7. */
const prompts = Array.from({ length: 6 }, (_, i) => `k${i}=`);
const docs = prompts.flatMap((p) => Array.from({ length: 10 }, (_, d) => `${p}${d}`));
let foundation: Weights;

const rl = (o: Partial<RlRecipe> = {}): RlRecipe => ({
  ...RL_DEFAULTS,
  steps: 30,
  maxTokens: 2,
  promptsPerStep: 3,
  samplesPerPrompt: 8,
  learningRate: 3e-3,
  klBudget: 2,
  checkEvery: 10,
  replayWeight: 0,
  seed: 5,
  ...o,
});

beforeAll(async () => {
  await initBackend();
  foundation = (
    await trainModel({
      config,
      init: initWeights(config, 1),
      sources: [{ name: 'f', weight: 1, docs }],
      recipe: recipe({ steps: 150, batchSize: 8, learningRate: 1e-2 }),
    })
  ).weights;
}, 120_000);

describe('policy-gradient update', () => {
  it('leave-one-out advantages are centred per group', () => {
    expect(rlooAdvantages([1, 0, 0, 0])).toEqual([1, -1 / 3, -1 / 3, -1 / 3]);
    expect(rlooAdvantages([1, 1])).toEqual([0, 0]);
    expect(rlooAdvantages([1])).toEqual([0]);
  });

  it('raises a verifier reward within the KL budget without leaking tensors', async () => {
    const reward = (c: string) => verify({ kind: 'regex', pattern: '^7' }, c);
    const tasks = prompts.slice(0, 4).map((prompt) => ({ prompt, reward }));
    const heldOut = prompts.slice(4).map((prompt) => ({ prompt, reward }));
    const before = tf.memory().numTensors;
    const r = await rlTrain({ config, reference: foundation, recipe: rl(), tasks, heldOut, replay: [{ name: 'replay', weight: 1, docs }] });
    expect(tf.memory().numTensors).toBe(before);
    const meanFirst = r.curve.slice(0, 5).reduce((s, c) => s + c.reward, 0) / 5;
    const meanLast = r.curve.slice(-5).reduce((s, c) => s + c.reward, 0) / 5;
    expect(meanLast - meanFirst).toBeGreaterThan(0.2);
    expect(r.finalKl).toBeLessThanOrEqual(2);
    expect(r.curve.every((c) => c.kl < 2)).toBe(true);
  }, 120_000);

  it('stops at the hard KL budget and keeps the last weights under it', async () => {
    const reward = (c: string) => verify({ kind: 'regex', pattern: '^7' }, c);
    const tasks = prompts.map((prompt) => ({ prompt, reward }));
    // checkEvery 1: every step is a check step, so the step the stop discards always had its check.
    const recipe = rl({ klBudget: 0.1, klCoef: 0, learningRate: 3e-4, checkEvery: 1 });
    const r = await rlTrain({ config, reference: foundation, recipe, tasks, heldOut: tasks.slice(0, 2) });
    expect(r.stoppedBy).toBe('kl-budget');
    expect(r.steps).toBeGreaterThan(1);
    expect(r.steps).toBeLessThan(30);
    expect(r.curve.every((c) => c.kl < 0.1)).toBe(true);
    // The kept weights and every record of them are those of the same update run for exactly `steps` steps
    // (deterministic: same seed, same batches), which stops by steps.
    const ended = await rlTrain({ config, reference: foundation, recipe: { ...recipe, steps: r.steps }, tasks, heldOut: tasks.slice(0, 2) });
    expect(ended.stoppedBy).toBe('steps');
    for (const [name, w] of ended.weights) expect(Array.from(r.weights.get(name)!.data), name).toEqual(Array.from(w.data));
    expect(r.checks).toEqual(ended.checks);
    expect(r.checks.at(-1)!.step).toBe(r.steps);
    expect(r.finalKl).toBe(ended.finalKl);
    expect(r.finalKl).toBe(r.checks.at(-1)!.kl);
    expect(r.curve).toEqual(ended.curve);
    expect(r.finalLoss).toBe(ended.finalLoss);
    // What the gate's rl:kl judges: the kept weights' held-out KL, within the budget here.
    expect(r.finalKl).toBeLessThan(0.1);
  }, 120_000);

  it('counts what the update spent, and applies the plasticity interventions that keep the released model (dormant reset, L2 pull to init), refusing the others', async () => {
    const reward = (c: string) => verify({ kind: 'regex', pattern: '^7' }, c);
    const tasks = prompts.slice(0, 4).map((prompt) => ({ prompt, reward }));
    const heldOut = prompts.slice(4).map((prompt) => ({ prompt, reward }));
    const replay = [{ name: 'replay', weight: 1, docs }];
    const recipe = rl({ steps: 4, checkEvery: 2, replayWeight: 0.5 });
    const plain = await rlTrain({ config, reference: foundation, recipe, tasks, heldOut, replay });
    expect(plain.spent.sampledTokens).toBeGreaterThan(0);
    // Forward and backward over every trained position, as supervised training counts it, plus the forward passes.
    expect(plain.spent.trainedTokens).toBeGreaterThan(4 * recipe.replayBatch * config.context);
    expect(plain.spent.flops).toBeGreaterThan(plain.spent.trainedTokens * flopsPerToken(config));
    // The line limits' up-front bound (every pass at the full context) is never below what the update spent.
    const bound = rlFlops(recipe, config.context * flopsPerToken(config), { prompts: 4, ratings: 0, heldOutPrompts: 2, heldOutRatings: 0 });
    expect(plain.spent.flops).toBeLessThanOrEqual(bound);
    expect(plain.spent.flops).toBeGreaterThan(bound / 20);
    // The surrogate, β·KL and the replay cross-entropy of the last step.
    expect(plain.finalLoss).toBe(plain.curve.at(-1)!.loss);
    expect(plain.finalLoss).toBeGreaterThan(0.1);

    const plan = rlInterventions(config, foundation, ['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm'], { seed: 5, l2Pull: 1e-2 });
    expect(plan.applied.map((a) => a.intervention)).toEqual(['dormant-reset', 'l2-init']);
    expect(plan.refused.map((a) => a.intervention)).toEqual(['shrink-perturb', 'rewarm']);
    expect(plan.refused.every((r) => r.reason.length > 20)).toBe(true);
    const defended = await rlTrain({ config, reference: foundation, recipe, tasks, heldOut, replay, start: plan.start, l2Pull: plan.l2Pull });
    // The start is the released model's function: the first check is the released model's.
    expect(defended.checks[0]).toEqual(plain.checks[0]);
    const moved = (w: typeof plain.weights) => Math.max(...[...w].map(([n, t]) => Math.max(...t.data.map((x, i) => Math.abs(x - foundation.get(n)!.data[i]!)))));
    expect(moved(defended.weights)).not.toBe(moved(plain.weights));
    expect(rlInterventions(config, foundation, ['l2-init'], { seed: 5, l2Pull: 0 }).refused[0]!.reason).toMatch(/l2Pull is 0/);
  }, 120_000);

  it('learns from logged ratings offline and the over-optimisation guard stops a hacked reward', async () => {
    // Proxy with a loophole: any answer starting with 5-9 pays; gold: only 7. Offline ratings favour 7.
    const logged = prompts.flatMap((prompt) => ['7', '3'].map((completion) => ({ prompt, completion, reward: completion === '7' ? 1 : 0 })));
    const gold = (c: string) => verify({ kind: 'exact', answer: '7' }, c);
    const hacked = prompts.map((prompt) => ({ prompt, reward: (c: string) => (/^[5-9]/.test(c) ? 1 : 0), gold }));
    const policy = { ...RL_GUARD_DEFAULTS, klBudget: 2 };
    const r = await rlTrain({
      config,
      reference: foundation,
      recipe: rl({ steps: 40, checkEvery: 5 }),
      tasks: hacked,
      heldOut: hacked,
      stopRule: (c) => overOptimisation(c, policy),
    });
    expect(r.stoppedBy).toBe('guard');
    expect(r.reason).toMatch(/^over-optimisation/);
    const off = await rlTrain({
      config,
      reference: foundation,
      recipe: rl({ steps: 20 }),
      tasks: [],
      logged,
      heldOut: prompts.map((prompt) => ({ prompt, reward: gold })),
    });
    expect(off.checks[off.checks.length - 1]!.reward).toBeGreaterThan(off.checks[0]!.reward);
    expect(off.spent.flops).toBeLessThanOrEqual(rlFlops(rl({ steps: 20 }), config.context * flopsPerToken(config), { prompts: 0, ratings: logged.length, heldOutPrompts: prompts.length, heldOutRatings: 0 }));
  }, 180_000);

  it('checks the update against held-out ratings: agreement rises when they agree with the training ratings, and a reversal is rejected', async () => {
    // Trained on ratings of prompts 0-3 (raters like "7", not "3"); held out: ratings of prompts 4-5.
    const rate = (ps: string[], good: string) => ps.flatMap((prompt) => ['7', '3'].map((completion) => ({ prompt, completion, reward: completion === good ? 1 : 0 })));
    const logged = rate(prompts.slice(0, 4), '7');
    const heldOut = prompts.slice(4).map((prompt) => ({ prompt, reward: (c: string) => verify({ kind: 'exact', answer: '7' }, c) }));
    const run = (heldOutLogged: ReturnType<typeof rate>) =>
      rlTrain({ config, reference: foundation, recipe: rl({ steps: 20 }), tasks: [], logged, heldOut, heldOutLogged });
    const agreeing = await run(rate(prompts.slice(4), '7'));
    expect(agreeing.checks[0]!.ratings).toBe(0.5);
    expect(agreeing.checks.at(-1)!.ratings).toBeGreaterThan(0.5);
    const policy = { ...RL_GUARD_DEFAULTS, klBudget: 2 };
    expect(rlVerdict(agreeing.checks, policy).reasons.join()).not.toMatch(/ratings/);
    // Held-out raters who prefer the other answer: the same update moves away from them.
    const reversed = await run(rate(prompts.slice(4), '3'));
    expect(reversed.checks.at(-1)!.ratings).toBeLessThan(0.5 - policy.goldTolerance);
    expect(rlVerdict(reversed.checks, policy).reasons).toContainEqual(expect.stringMatching(/^agreement with the held-out ratings fell \(0\.500 -> 0\.\d{3}\)$/));
  }, 180_000);
});
