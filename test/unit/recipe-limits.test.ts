/** A line's default limits and the check of a recipe against them (domain/recipe-limits.ts; issue 33, item 2). */
import { describe, expect, it } from 'vitest';
import { cycleFlops, defaultLimits, effectiveLimits, limitProblems } from '../../domain/recipe-limits.ts';
import { DEFAULT_RECIPE } from '../../schemas/defaults.ts';

describe('line limits', () => {
  it('default from the larger of the line recipe and the default recipe', () => {
    expect(defaultLimits(DEFAULT_RECIPE, 1)).toEqual({
      maxSteps: 2000,
      maxBatchSize: 64,
      maxFlopsPerCycle: 16 * 200 * 16,
      keepCheckpoints: 3,
      minCheckpointEvery: 10,
      maxReplayBudget: 50_000,
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
});
