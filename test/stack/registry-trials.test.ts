/** registry/trials.ts: warm starts across lines (a line with no search of its own starts from its siblings' chosen recipes) and the passing trials the early stop compares with. */
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

describe('passed trials (the early stop envelope)', () => {
  /** A trial of `line` judged at `steps` (the last its horizon), passing there when `pass`, in cycle `cycle`. */
  const judged = (line: string, cycle: string, trial: string, steps: number[], pass: boolean, margins: number[]) =>
    t.registry.recordTrials({
      line,
      cycleKey: cycle,
      cycleId: cycle,
      dropDigest: null,
      features: {},
      trials: steps.map((toStep, rung) => ({
        trial,
        rung,
        bracket: 0,
        source: 'history',
        recipe: { ...FIXTURE_LINE.recipe, steps: steps.at(-1)! },
        fromStep: rung ? steps[rung - 1]! : 0,
        toStep,
        flops: 1e6,
        wallMs: 5,
        metrics: {},
        margin: margins[rung]!,
        pass: pass && rung === steps.length - 1,
        status: rung < steps.length - 1 ? 'kept' : pass ? 'chosen' : 'rejected',
        summary: 'fixture',
      })),
    });

  it("gives every judged segment of the line's trials that passed at their horizon, newest first, and nothing else", async () => {
    await seedLine(t.registry, 'e1', 'f1');
    await judged('e1', 'c1', 't1', [5, 10, 60], true, [-0.5, -0.2, 0.1]);
    await judged('e1', 'c1', 't2', [5, 10, 60], false, [-0.9, -0.8, -0.1]);
    // A trial stopped early (it never reached its horizon), and a trial of another horizon that passed.
    await judged('e1', 'c2', 't1', [5], false, [-2]);
    await judged('e1', 'c2', 't2', [15, 30], true, [-0.3, 0.05]);
    await judged('e1', 'c3', 't1', [5, 10, 60], true, [-0.4, -0.1, 0.2]);
    const passed = await t.registry.passedTrials('e1');
    expect(passed.map((p) => [p.recipe.steps, p.segments.map((s) => [s.toStep, s.margin, s.pass])])).toEqual([
      [
        60,
        [
          [5, -0.4, false],
          [10, -0.1, false],
          [60, 0.2, true],
        ],
      ],
      [
        30,
        [
          [15, -0.3, false],
          [30, 0.05, true],
        ],
      ],
      [
        60,
        [
          [5, -0.5, false],
          [10, -0.2, false],
          [60, 0.1, true],
        ],
      ],
    ]);
    expect(await t.registry.passedTrials('e1', 1)).toHaveLength(1);
    expect(await t.registry.passedTrials('a2')).toEqual([]);
    expect(await t.registry.passedTrials('no-such-line')).toEqual([]);
  });
});
