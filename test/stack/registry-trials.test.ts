/** Warm starts across lines (registry/trials.ts): a line with no search of its own starts from its siblings' chosen recipes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_LINE, openTestRegistry, seedLine, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;

/** One recorded trial of `status` on `line` whose recipe is the fixture's at `steps`. */
async function trial(line: string, steps: number, status: 'chosen' | 'pruned' = 'chosen') {
  await t.registry.recordTrials({
    line,
    cycleKey: `cycle:${line}:${steps}`,
    cycleId: `cycle:${line}:${steps}`,
    dropDigest: null,
    features: { records: steps },
    trials: [
      {
        trial: 't1',
        rung: 0,
        bracket: 1,
        source: 'grid',
        recipe: { ...FIXTURE_LINE.recipe, steps },
        fromStep: 0,
        toStep: steps,
        flops: 1e6,
        wallMs: 5,
        metrics: {},
        margin: 0.01,
        pass: status === 'chosen',
        status,
        summary: 'fixture',
      },
    ],
  });
}

beforeAll(async () => {
  t = await openTestRegistry('registry_trials');
  await seedLine(t.registry, 'f1');
  await seedLine(t.registry, 'f2');
  await t.registry.ensureLine({ name: 'f3', kind: 'foundation', ...FIXTURE_LINE, modelConfig: { ...FIXTURE_LINE.modelConfig, dModel: 32 }, actor: 'test' });
  await seedLine(t.registry, 'a1', 'f1');
  await seedLine(t.registry, 'a2', 'f1');
  await seedLine(t.registry, 'a3', 'f2');
  await trial('a1', 11);
  await trial('a1', 99, 'pruned');
  await trial('a3', 13);
  await trial('f2', 14);
  await trial('f3', 15);
});
afterAll(async () => t?.close());

describe('chosen recipes elsewhere', () => {
  it('takes only chosen recipes of lines on the same foundation line (so of the same kind) and shape, never its own', async () => {
    const steps = async (line: string) => (await t.registry.chosenRecipesElsewhere(line)).map((h) => [h.line, h.recipe.steps]);
    // a3 is on another foundation; the foundations are of another kind; a1's pruned trial was not chosen.
    expect(await steps('a2')).toEqual([['a1', 11]]);
    expect(await steps('a1')).toEqual([]);
    // f3 has another shape; the application lines are of another kind.
    expect(await steps('f1')).toEqual([['f2', 14]]);
    expect(await steps('no-such-line')).toEqual([]);
  });
});
