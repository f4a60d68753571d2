/** A line's default limits and the check of a recipe against them (domain/recipe-limits.ts; issue 33, item 2). */
import { describe, expect, it } from 'vitest';
import { cycleFlops, defaultLimits, effectiveLimits, limitProblems, rlFlops, rlLimitProblems } from '../../domain/recipe-limits.ts';
import { DEFAULT_RECIPE, DEFAULT_RL } from '../../schemas/defaults.ts';

describe('line limits', () => {
  it('default from the larger of the line recipe and the default recipe', () => {
    expect(defaultLimits(DEFAULT_RECIPE, 1)).toEqual({
      maxSteps: 2000,
      maxBatchSize: 64,
      maxFlopsPerCycle: 16 * 200 * 16,
      keepCheckpoints: 3,
      minCheckpointEvery: 10,
      maxReplayBudget: 50_000,
      maxRlSteps: 200,
      maxRlSamplesPerStep: 128,
      maxRlTokens: 48,
    });
    // A foundation of 1200 steps may take a drop of 12,000; a tiny test recipe still gets the default recipe's room.
    expect(defaultLimits({ ...DEFAULT_RECIPE, steps: 1200 }).maxSteps).toBe(12_000);
    expect(defaultLimits({ ...DEFAULT_RECIPE, steps: 10, batchSize: 2 }, 1)).toMatchObject({ maxSteps: 2000, maxBatchSize: 64 });
    expect(effectiveLimits({ maxSteps: 50 }, DEFAULT_RECIPE, 1)).toMatchObject({ maxSteps: 50, maxBatchSize: 64 });
  });

  it("names every limit a recipe breaks, and the issue's 320,000x blow-up among them", () => {
    const limits = defaultLimits(DEFAULT_RECIPE, 1);
    const greedy = { ...DEFAULT_RECIPE, steps: 1_000_000, batchSize: 1024, checkpointEvery: 1, replayBudget: 1e7 };
    expect(cycleFlops(greedy, 1) / cycleFlops(DEFAULT_RECIPE, 1)).toBe(320_000);
    expect(limitProblems(greedy, limits, { flopsPerSample: 1, override: { warmupSteps: 2_000_000 } })).toEqual([
      "steps 1000000 is over the line's limit maxSteps 2000",
      "batchSize 1024 is over the line's limit maxBatchSize 64",
      "checkpointEvery 1 is under the line's limit minCheckpointEvery 10",
      "replayBudget 10000000 is over the line's limit maxReplayBudget 50000",
      "warmupSteps 2000000 is over the drop's steps 1000000",
      "1000000 steps x batch 1024 = 1.02e+9 training FLOPs is over the line's limit maxFlopsPerCycle 5.12e+4",
    ]);
    // Within them: nothing; no checkpoints (0) costs nothing; a search is held to its whole budget.
    expect(limitProblems({ ...DEFAULT_RECIPE, checkpointEvery: 0 }, limits, { flopsPerSample: 1 })).toEqual([]);
    expect(limitProblems({ ...DEFAULT_RECIPE, search: { budgetFactor: 20 } }, limits, { flopsPerSample: 1 })).toEqual([
      "the search budget of 6.40e+4 training FLOPs is over the line's limit maxFlopsPerCycle 5.12e+4",
    ]);
  });

  it("names every limit a feedback drop's RL update breaks, its FLOPs counted as rlTrain counts them", () => {
    const limits = defaultLimits(DEFAULT_RECIPE, 1);
    // The line's own RL fields scale the RL defaults as its recipe scales the others.
    expect(defaultLimits({ ...DEFAULT_RECIPE, rl: { steps: 50, samplesPerPrompt: 16, maxTokens: 10 } }, 1)).toMatchObject({
      maxRlSteps: 500,
      maxRlSamplesPerStep: 256,
      maxRlTokens: 80,
    });
    // Per step: 4 x 8 answers of 6 tokens sampled (192 forward passes), the reference's two passes over the 32 and
    // their update, and a replay batch of 4; a third of a training pass for a forward one. Checks need the counts.
    expect(rlFlops({}, 1)).toBeCloseTo(DEFAULT_RL.steps * ((192 + 64) / 3 + 32 + 4), 6);
    const counts = { prompts: 10, ratings: 3, heldOutPrompts: 5, heldOutRatings: 2 };
    // 3 logged answers join each step; 5 checks (steps 0, 5, 10, 15, 20) of 5 greedy answers, their KL and 2 ratings.
    expect(rlFlops({}, 1, counts)).toBeCloseTo(20 * ((192 + 2 * 35) / 3 + 35 + 4) + 5 * ((5 * 8 + 4) / 3), 6);
    expect(rlFlops({ replayWeight: 0 }, 2, { ...counts, prompts: 1 })).toBeCloseTo(2 * (20 * ((48 + 2 * 11) / 3 + 11) + 5 * (44 / 3)), 6);
    // The RL defaults fit with room (about 18x under the cap), and so does an override within the other limits.
    expect(rlLimitProblems({}, limits, { flopsPerSample: 1, counts })).toEqual([]);
    expect(rlLimitProblems({ steps: 200 }, limits, { flopsPerSample: 1, counts })).toEqual([]);
    // The schema's largest update: 100,000 steps of 256 prompts x 64 samples of 256 tokens.
    expect(rlLimitProblems({ steps: 100_000, promptsPerStep: 256, samplesPerPrompt: 64, maxTokens: 256 }, limits, { flopsPerSample: 1 })).toEqual([
      "rl.steps 100000 is over the line's limit maxRlSteps 200",
      "rl.promptsPerStep 256 x rl.samplesPerPrompt 64 = 16384 samples a step is over the line's limit maxRlSamplesPerStep 128",
      "rl.maxTokens 256 is over the line's limit maxRlTokens 48",
      "the RL update of 100000 steps x 16384 samples of up to 256 tokens = up to 1.43e+11 FLOPs is over the line's limit maxFlopsPerCycle 5.12e+4",
    ]);
    // Held-out checks every step over many prompts break the cap though no field does.
    expect(rlLimitProblems({ steps: 200, checkEvery: 1 }, limits, { flopsPerSample: 1 })).toEqual([]);
    expect(rlLimitProblems({ steps: 200, checkEvery: 1 }, limits, { flopsPerSample: 1, counts: { ...counts, heldOutPrompts: 100 } })).toEqual([
      "the RL update of 200 steps x 32 samples of up to 6 tokens = up to 7.91e+4 FLOPs is over the line's limit maxFlopsPerCycle 5.12e+4",
    ]);
  });
});
