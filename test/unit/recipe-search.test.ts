/** The pure recipe-search plan (domain/recipe-search.ts): cheapest first, budget-bounded, warm-started, safe on crashes. */
import { describe, expect, it } from 'vitest';
import {
  type Knobs,
  type StopEarly,
  type Trajectory,
  type TrialRun,
  STOP_EARLY,
  atHorizon,
  gateMargin,
  isStoppedEarly,
  judgedOf,
  passingTrajectories,
  scheduleKey,
  searchRecipe,
  watchedSteps,
} from '../../domain/recipe-search.ts';

const base: Knobs = { steps: 80, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 8, replayRatio: 0.3, l2Pull: 1e-3 };

/** A fake learner whose loss falls with steps x rate: `need` is the steps x rate product a pass requires. */
function world(need: number, crash = new Set<string>()) {
  const runs: TrialRun[] = [];
  return {
    runs,
    run: async (rs: TrialRun[]) =>
      rs.map((r) => {
        runs.push(r);
        if (crash.has(r.trial.id)) return { ok: false as const, error: 'worker died' };
        const reach = r.toStep * r.trial.knobs.learningRate;
        return {
          ok: true as const,
          steps: r.toStep,
          flops: (r.toStep - r.fromStep) * 10,
          wallMs: 1,
          checkpoint: `${r.trial.id}@${r.toStep}`,
          metrics: { s: { loss: 2 - reach / need } },
        };
      }),
    judge: (m: Record<string, Record<string, number | undefined>>) => {
      const loss = m.s!.loss!;
      return { pass: loss <= 1, margin: (1 - loss) / 1, summary: `loss ${loss}` };
    },
  };
}

/** A learner that learns the drop (`s`) at the full 80 steps and loses the old suite under the recipes `forgets` names. */
function forgetting(forgets: (k: Knobs) => boolean) {
  return {
    run: async (rs: TrialRun[]) =>
      rs.map((r) => ({
        ok: true as const,
        steps: r.toStep,
        flops: (r.toStep - r.fromStep) * 10,
        wallMs: 1,
        checkpoint: `${r.trial.id}@${r.toStep}`,
        metrics: { s: { loss: r.toStep >= 80 ? 0.5 : 1.5 }, old: { loss: forgets(r.trial.knobs) ? 1.5 : 0.5 } },
      })),
    judge: (m: Record<string, Record<string, number | undefined>>) => {
      const worst = Math.max(m.s!.loss!, m.old!.loss!);
      return { pass: worst <= 1, margin: 1 - worst, summary: `loss ${worst}`, forgot: m.old!.loss! > 1 };
    },
  };
}

describe('searchRecipe', () => {
  it('picks the cheapest passing horizon, continuing promoted trials from their checkpoints', async () => {
    const w = world(0.3);
    const out = await searchRecipe({ base, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, run: w.run, judge: w.judge });
    expect(out.chosen?.status).toBe('chosen');
    expect(out.chosen!.toStep).toBe(10); // S/8 with a rate high enough
    const continued = w.runs.filter((r) => r.rung === 1);
    expect(continued.length).toBeGreaterThan(0);
    expect(continued.every((r) => r.resume?.endsWith(`@${r.fromStep}`) && r.fromStep === 5)).toBe(true);
    expect(out.trials.some((t) => t.status === 'pruned')).toBe(true);
    expect(out.flops).toBe(w.runs.reduce((a, r) => a + (r.toStep - r.fromStep) * 10, 0));
  });

  it('a recipe that passed before ends the search in one trial', async () => {
    const w = world(0.3);
    const prior = { ...base, steps: 10, learningRate: 4e-2 };
    const out = await searchRecipe({ base, history: [prior], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, run: w.run, judge: w.judge });
    expect(out.trials).toHaveLength(1);
    expect(out.chosen?.source).toBe('history');
  });

  it('never spends past the budget and rejects with the best trial when nothing passes', async () => {
    const w = world(1e9);
    const out = await searchRecipe({ base, history: [], budgetFlops: 600, flopsPerStep: 10, margin: 0, run: w.run, judge: w.judge });
    expect(out.chosen).toBeNull();
    expect(out.flops).toBeLessThanOrEqual(600);
    expect(out.best).not.toBeNull();
    expect(out.reason).toMatch(/budget/);
  });

  it("holds the base recipe's compute back, so a budget spent on short trials still ends with the base recipe", async () => {
    // Only the full horizon passes here (reach grows with steps alone); the trials before it would spend 1,200 of
    // the 1,200 FLOPs, leaving nothing for the base recipe's 800.
    const w = world(1);
    const full = {
      ...w,
      run: async (rs: TrialRun[]) => (await w.run(rs)).map((o, i) => (o.ok ? { ...o, metrics: { s: { loss: rs[i]!.toStep >= 80 ? 0.5 : 1.5 } } } : o)),
    };
    const out = await searchRecipe({ base, history: [], budgetFlops: 1200, flopsPerStep: 10, margin: 0, run: full.run, judge: full.judge });
    expect(out.chosen?.source).toBe('base');
    expect(out.flops).toBeLessThanOrEqual(1200);
    expect(out.reason).toMatch(
      /^only the base recipe passed \(80 steps, .*; the trials before it stopped: the compute budget \(1\.20e\+3 FLOPs, 8\.00e\+2 of it held for the base recipe\)/,
    );
    // The plan before the rule (kept for searches that ran it) spends the budget on trials and rejects.
    const old = await searchRecipe({ base, history: [], budgetFlops: 1200, flopsPerStep: 10, margin: 0, reserveBase: false, run: full.run, judge: full.judge });
    expect(old.chosen).toBeNull();
  });

  it('takes the base recipe when it passes, even below the margin asked: a search never rejects what the line would have trained', async () => {
    // Only the full horizon passes, with margin 0.5 (loss 0.5), below the 0.6 asked.
    const w = world(1);
    const only = {
      ...w,
      run: async (rs: TrialRun[]) => (await w.run(rs)).map((o, i) => (o.ok ? { ...o, metrics: { s: { loss: rs[i]!.toStep >= 80 ? 0.5 : 1.5 } } } : o)),
    };
    const out = await searchRecipe({ base, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0.6, run: only.run, judge: only.judge });
    expect(out.chosen).toMatchObject({ source: 'base', toStep: 80, margin: 0.5 });
    // The same when the base recipe ran first as the line's earlier recipe: the search looks for a cheaper one with
    // the margin, finds none, and comes back to it.
    const warm = await searchRecipe({ base, history: [base], budgetFlops: 1e9, flopsPerStep: 10, margin: 0.6, run: only.run, judge: only.judge });
    expect(warm.chosen).toMatchObject({ source: 'history', toStep: 80 });
    expect(warm.trials.length).toBeGreaterThan(1);
    expect(warm.reason).toMatch(/below the 0\.6 asked/);
    // Before the rule the search rejected both.
    const old = await searchRecipe({ base, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0.6, baseOnPass: false, run: only.run, judge: only.judge });
    expect(old.chosen).toBeNull();
  });

  it('drops a crashed trial and goes on with the others', async () => {
    const w = world(0.3, new Set(['t1']));
    const out = await searchRecipe({ base, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, run: w.run, judge: w.judge });
    expect(out.trials.find((t) => t.trial === 't1')?.status).toBe('failed');
    expect(out.chosen).not.toBeNull();
  });

  it('gateMargin is the smallest slack, negative on a failed suite', () => {
    const suite = (metric: 'loss' | 'exactMatch', candidate: number, bound: number) => ({
      suite: metric,
      metric,
      candidate,
      champion: null,
      bound,
      pass: metric === 'loss' ? candidate <= bound : candidate >= bound,
      reason: '',
    });
    expect(gateMargin({ verdict: 'pass', summary: '', suites: [suite('loss', 1.8, 2), suite('exactMatch', 0.7, 0.5)] })).toBeCloseTo(0.1);
    expect(gateMargin({ verdict: 'fail', summary: '', suites: [suite('loss', 2.2, 2)] })).toBeCloseTo(-0.1);
  });

  it("scales every bracket from the grid recipe, so the warmup keeps the base recipe's share at each horizon", async () => {
    // 300 steps with 20 of warmup; brackets at 38, 75 and 150 steps; only 150 steps reach far enough to pass.
    const long: Knobs = { ...base, steps: 300, warmupSteps: 20 };
    const search = (rescaleFromGrid?: boolean) => {
      const w = world(4);
      return searchRecipe({ base: long, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, run: w.run, judge: w.judge, rescaleFromGrid });
    };
    const now = await search();
    expect(now.chosen!.knobs.steps).toBe(150);
    expect(now.chosen!.knobs.warmupSteps).toBe(atHorizon(long, 150).warmupSteps); // 10
    expect(now.trials.filter((t) => t.bracket === 2).every((t) => t.knobs.warmupSteps === 5)).toBe(true);
    // The plan before the rule (kept for histories that ran it): each bracket rescaled the one before, 3 -> 6 -> 12.
    const before = await search(false);
    expect(before.chosen!.knobs.steps).toBe(150);
    expect(before.chosen!.knobs.warmupSteps).toBe(12);
  });

  it('a recipe of the line that forgot is tried again with more replay, on the compute held back for the base recipe', async () => {
    // The full horizon learns the drop; below replay 0.6 the update forgets an old suite. Nothing shorter passes.
    const { run, judge } = forgetting((k) => k.replayRatio < 0.6);
    // The base recipe ran as the line's earlier recipe and forgot: its repair at replay 0.6 takes the compute that
    // was held back for the base recipe (which has run), 1,600 FLOPs in all.
    const out = await searchRecipe({ base, history: [base], budgetFlops: 1600, flopsPerStep: 10, margin: 0, run, judge });
    expect(out.chosen).toMatchObject({ source: 'repair', toStep: 80, knobs: { ...base, replayRatio: 0.6 } });
    expect(out.trials.map((t) => t.source)).toEqual(['history', 'repair']);
    expect(out.trials[0]!.forgot).toBe(true);
    expect(out.flops).toBe(1600);
    expect(out.reason).toMatch(/^a recipe that passed on an earlier drop forgot; with replay 0\.6 it passed/);
    // As the last resort: the base recipe forgets after the grid found nothing, and its repair passes.
    const last = await searchRecipe({ base, history: [], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, run, judge });
    expect(last.chosen).toMatchObject({ source: 'repair', toStep: 80 });
    expect(last.trials.at(-2)!.source).toBe('base');
    expect(last.reason).toMatch(/^the base recipe forgot; with replay 0\.6/);
    // The plan before the rule (kept for histories that ran it) rejects both.
    const old = await searchRecipe({ base, history: [base], budgetFlops: 1600, flopsPerStep: 10, margin: 0, repair: false, run, judge });
    expect(old.chosen).toBeNull();
    expect(old.trials).toHaveLength(1);
    // An update that failed to learn its drop (no old suite failed) is not repaired with replay.
    const unlearnt = await searchRecipe({
      base,
      history: [base],
      budgetFlops: 1600,
      flopsPerStep: 10,
      margin: 0,
      run: async (rs) => (await run(rs)).map((o) => ({ ...o, metrics: { s: { loss: 1.5 }, old: { loss: 0.5 } } })),
      judge,
    });
    // Nor does the grid get the base recipe's held-back compute once it ran: only a repair may spend it.
    expect(unlearnt.trials.map((t) => t.source)).toEqual(['history']);
  });

  it('a repair never takes the compute held back for the base recipe: the base recipe still runs when it passes', async () => {
    // The line's last recipe (replay 0.4) forgets here; the base recipe (replay 0.3) does not.
    const { run, judge } = forgetting((k) => k.replayRatio === 0.4);
    const last = { ...base, replayRatio: 0.4 };
    const out = await searchRecipe({ base, history: [last, base], budgetFlops: 1600, flopsPerStep: 10, margin: 0, run, judge });
    // The repair of the first (800 more) would need the base recipe's 800: skipped, and the base recipe runs and passes.
    expect(out.trials.map((t) => t.source)).toEqual(['history', 'history']);
    expect(out.chosen).toMatchObject({ knobs: base, source: 'history' });
    expect(out.flops).toBe(1600);
    // A warm start too long for the budget left beside the base recipe's share stops the warm starts; the base
    // recipe behind it still runs as the last resort (before, having been listed made it count as tried).
    const long = { ...base, steps: 100 };
    const stopped = await searchRecipe({ base, history: [long, base], budgetFlops: 1600, flopsPerStep: 10, margin: 0, run, judge });
    expect(stopped.chosen).toMatchObject({ knobs: base, source: 'base' });
    const before = await searchRecipe({ base, history: [long, base], budgetFlops: 1600, flopsPerStep: 10, margin: 0, repair: false, run, judge });
    expect(before.chosen).toBeNull();
  });

  it("judgedOf: an update forgot when a suite other than its drop's failed", () => {
    const verdict = (suite: string, pass: boolean) => ({ suite, metric: 'loss' as const, candidate: 1, champion: 1, bound: 1, pass, reason: '' });
    const suites = [
      { name: 'general/text', kind: 'text' as const, isNew: false },
      { name: 'drop/text', kind: 'text' as const, isNew: true },
    ];
    const of = (general: boolean, drop: boolean) =>
      judgedOf({ verdict: general && drop ? 'pass' : 'fail', summary: '', suites: [verdict('general/text', general), verdict('drop/text', drop)] }, suites);
    expect(of(false, true)).toMatchObject({ pass: false, forgot: true });
    expect(of(true, false)).toMatchObject({ pass: false, forgot: false });
    expect(of(true, true)).toMatchObject({ pass: true, forgot: false });
  });
});

describe('searchRecipe with stopEarly: hopeless updates stopped from the line record', () => {
  const at = [...STOP_EARLY.at];
  /**
   * A search warm-started from the base recipe over the world above at the base rate (margin (s / 80) * reach - 1
   * at step s: `reach` 2 passes at the 80-step horizon with margin 1), stopping early by `stop` (no record by default).
   */
  const search = async (reach: number, stop: Partial<StopEarly> = {}, budgetFlops = 1e9) => {
    const w = world(0.8 / reach);
    const out = await searchRecipe({
      base,
      history: [base],
      budgetFlops,
      flopsPerStep: 10,
      margin: 0,
      stopEarly: { at, slack: 0.2, minPassing: 2, passing: [], ...stop },
      ...w,
    });
    return { out, runs: w.runs };
  };
  /** The trajectories the record holds after passing searches of learners with these reaches. */
  const record = async (...reaches: number[]) => {
    const passing: Trajectory[] = [];
    for (const reach of reaches) passing.push(...passingTrajectories((await search(reach, { passing })).out.trials));
    return passing;
  };

  it('judges a trial on its way, resuming each segment from the last, and records what a passing update looked like', async () => {
    expect(watchedSteps(80, at)).toEqual([7, 13, 27]);
    const { out, runs } = await search(2);
    expect(out.chosen).toMatchObject({ source: 'history', toStep: 80, fromStep: 27, rung: 3 });
    expect(runs.map((r) => [r.fromStep, r.toStep, r.resume ?? null])).toEqual([
      [0, 7, null],
      [7, 13, 't1@7'],
      [13, 27, 't1@13'],
      [27, 80, 't1@27'],
    ]);
    // The same compute as one segment: resumed segments are charged their own steps only.
    expect(out.flops).toBe(800);
    const [trajectory] = passingTrajectories(out.trials);
    expect(trajectory!.schedule).toBe(scheduleKey(base));
    expect(trajectory!.points.map((p) => p.step)).toEqual([7, 13, 27]);
    trajectory!.points.forEach((p) => expect(p.margin).toBeCloseTo((p.step / 80) * 2 - 1));
  });

  it('stops an update below every passing one of its schedule by more than the slack, and rejects the drop without the rest of the search', async () => {
    const passing = await record(2, 2.5);
    // Margin at step 7: -0.956, where the passing ones were at -0.825 and -0.781.
    const { out } = await search(0.5, { slack: 0.1, passing });
    expect(out.chosen).toBeNull();
    expect(out.trials).toHaveLength(1);
    expect(out.stoppedEarly).toMatchObject({ toStep: 7, status: 'pruned', source: 'history' });
    expect(isStoppedEarly(out.stoppedEarly!)).toBe(true);
    expect(out.flops).toBe(70);
    expect(out.reason).toMatch(/^stopped early: the history recipe's update \(80 steps\) was below every passing update of the line's record at step 7 /);
    expect(out.stoppedEarly!.summary).toMatch(
      /^stopped at step 7 of 80: margin -0\.9563 is below the lowest of the line's 2 passing update\(s\) of this schedule at that step \(-0\.8250\) by more than 0\.1/,
    );
    // Without stopEarly the same learner runs everything the budget holds (the warm start, the grid, and so on).
    const w = world(0.8 / 0.5);
    const off = await searchRecipe({ base, history: [base], budgetFlops: 1e9, flopsPerStep: 10, margin: 0, ...w });
    expect(off.flops).toBeGreaterThan(800);
    expect(off.trials.some(isStoppedEarly)).toBe(false);
  });

  it('goes on within the slack, with too few passing updates on record, or against another schedule', async () => {
    const passing = await record(2, 2.5);
    // A slower update within the slack at every judged step (0.135 below at step 27) runs to its horizon and passes.
    expect((await search(1.6, { passing })).out.chosen).toMatchObject({ toStep: 80, source: 'history' });
    // The update the test above stops (slack 0.1), with too few passing updates on record or another schedule's.
    expect((await search(0.5, { slack: 0.1, passing })).out.stoppedEarly).toMatchObject({ toStep: 7 });
    expect((await search(0.5, { slack: 0.1, minPassing: 3, passing })).out.stoppedEarly).toBeUndefined();
    expect((await search(0.5, { slack: 0.1, passing: passing.map((t) => ({ ...t, schedule: 'another' })) })).out.stoppedEarly).toBeUndefined();
    // A learner that passes is never stopped by its own record.
    expect((await search(2, { slack: 0, passing })).out.chosen).toMatchObject({ toStep: 80 });
  });

  it('never starts a judged trial the budget cannot finish', async () => {
    // 800 FLOPs for the warm start; 700 in the budget: not even its first segment (70) runs.
    const { out, runs } = await search(2, {}, 700);
    expect(runs).toHaveLength(0);
    expect(out.chosen).toBeNull();
    expect(out.reason).toMatch(/^the compute budget \(7\.00e\+2 FLOPs\) does not cover 1 more trial segment/);
  });
});
