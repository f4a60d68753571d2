/**
 * Recipe `auto` on the real stack (issue 15): a line whose recipe searches runs a search child workflow with
 * several trial activities, records every trial linked to the version, and promotes the winning trial's weights;
 * a gate no recipe can pass ends the cycle rejected with the best trial's numbers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { DEFAULT_GATE_RULES } from '../../schemas/defaults.ts';
import { startTestLoop, writeTextDrop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const suffix = Date.now().toString(36);

const writeDrop = (name: string, seed: number, paragraphs: number) => writeTextDrop(loop.dataDir, name, seed, paragraphs);

beforeAll(async () => {
  loop = await startTestLoop('search');
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

describe('recipe auto on real Temporal and PostgreSQL', () => {
  // First: a line with no search of its own starts from the other lines' chosen recipes (the last test), and this
  // one is about the search's own halving.
  it('rejects the drop with the best trial numbers when no recipe can pass', async () => {
    const line = `hopeless-${suffix}`;
    // No byte-level model gets its held-out loss under 0.01: every trial fails the floor.
    const spec = await loop.createLine(line, { recipe: { search: { width: 2 } }, gateRules: { floors: { loss: 0.01, exactMatch: 0 } } });
    const { request } = await sendDrop(loop, line, writeDrop('b.jsonl', 2, 30), { recipe: { search: { width: 2, margin: 0 } } });
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('rejected');
    expect(summary.reason).toMatch(/recipe search found no passing recipe/);
    expect(summary.reason).toMatch(/best trial t\d+ \(\d+ steps, lr [\d.e-]+, margin -?[\d.]+\): failed on/);
    const trials = await loop.registry.listTrials(line);
    expect(trials.length).toBeGreaterThanOrEqual(3);
    expect(trials.some((t) => t.status === 'chosen')).toBe(false);
    expect(trials.some((t) => t.status === 'pruned')).toBe(true);
    // The default budget: 1.5 times the line's recipe's training FLOPs (a trial segment gives the FLOPs per step).
    const perStep = trials[0]!.flops / (trials[0]!.toStep - trials[0]!.fromStep);
    const [, spent, budget] = /, ([\d.e+]+) of ([\d.e+]+) FLOPs\)/.exec(summary.reason)!.map(Number);
    expect(budget! / (spec.recipe.steps * perStep)).toBeCloseTo(1.5, 1);
    expect(spent! / trials.reduce((a, t) => a + t.flops, 0)).toBeCloseTo(1, 2);
    expect(summary.version).toBeUndefined();
    const drop = await loop.registry.getDrop(line, request.digest);
    expect(drop?.status).toBe('rejected');
  });

  it('searches with several trial activities, records the trials against the version, and promotes', async () => {
    const line = `auto-${suffix}`;
    await loop.createLine(line, { recipe: { search: { width: 2 } } });
    const { request } = await sendDrop(loop, line, writeDrop('a.jsonl', 1, 30));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('promoted');

    const trials = await loop.registry.listTrials(line);
    expect(trials.length).toBeGreaterThanOrEqual(2);
    const chosen = trials.filter((t) => t.status === 'chosen');
    expect(chosen).toHaveLength(1);
    expect(trials.every((t) => t.version === summary.version)).toBe(true);
    // The version carries the chosen recipe (cheaper than the line's 60 steps), not the search settings.
    const v = await loop.registry.getVersion(line, summary.version!);
    const recipe = v.recipe as { steps: number; search?: unknown; learningRate: number };
    expect(recipe.search).toBeUndefined();
    expect(recipe.steps).toBe(chosen[0]!.toStep);
    expect(recipe.steps).toBeLessThan(60);
    // The candidate resumed from the chosen trial's last checkpoint: its wall time is that trial's segments', not
    // the moment the resumed run took.
    const chain = trials.filter((t) => t.trial === chosen[0]!.trial);
    const chainWall = chain.reduce((a, t) => a + t.wallMs, 0);
    // (Each segment's wall time also holds what its run did after its last checkpoint: a few ms.)
    expect(v.compute.wallMs).toBeGreaterThanOrEqual(0.8 * chainWall);

    // Each trial segment is an activity of the search workflow.
    const history = await loop.client.workflow.getHandle(`${summary.cycleId}:search`).fetchHistory();
    const scheduled = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runRecipeTrial');
    expect(scheduled.length).toBe(trials.length);
  });

  it("starts a new line's first search from the recipes chosen on the other lines on its foundation with its shape", async () => {
    const [chosen] = (await loop.registry.listTrials(`auto-${suffix}`)).filter((t) => t.status === 'chosen');
    expect(chosen).toBeDefined();
    const line = `sibling-${suffix}`;
    await loop.createLine(line, { recipe: { search: { width: 2 } } });
    const { request } = await sendDrop(loop, line, writeDrop('c.jsonl', 3, 30));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('promoted');
    const trials = await loop.registry.listTrials(line);
    // Its first trial is the warm start: the first line's chosen recipe, tried alone at its own horizon (judged on
    // its way, in segments that each resume the one before).
    const warm = trials.filter((t) => t.trial === trials[0]!.trial);
    expect(warm[0]).toMatchObject({ source: 'history', rung: 0, fromStep: 0 });
    expect(warm.at(-1)).toMatchObject({ toStep: chosen!.toStep });
    expect(warm[0]!.recipe).toEqual(chosen!.recipe);
  });

  it('tries a warm start that forgot an old suite again with more replay, as a repair trial of the search', async () => {
    const line = `forgets-${suffix}`;
    await loop.createLine(line, { recipe: { search: { width: 2 } } });
    const first = await sendDrop(loop, line, writeDrop('d.jsonl', 5, 30));
    expect((await waitForCycle(loop.client, line, first.request.digest)).verdict).toBe('promoted');
    const [warm] = (await loop.registry.listTrials(line)).filter((t) => t.status === 'chosen');
    // From now on the first drop's text suite has a floor no model reaches: every update fails on an old suite.
    const old = (await loop.registry.listSuites(line)).find((s) => s.kind === 'text')!;
    await loop.registry.updateLine({
      name: line,
      gateRules: { ...DEFAULT_GATE_RULES, suites: { [old.name]: { floors: { loss: 0.01 } } } },
      actor: 'test',
      reason: 'an old suite no update can pass',
    });
    const second = await sendDrop(loop, line, writeDrop('e.jsonl', 6, 30));
    expect((await waitForCycle(loop.client, line, second.request.digest)).verdict).toBe('rejected');
    // Each trial's segment at its horizon (the trials before it are judged on their way).
    const atHorizon = (t: { toStep: number; recipe: Record<string, unknown> }) => t.toStep === t.recipe.steps;
    const trials = (await loop.registry.listTrials(line)).filter((t) => t.dropDigest === second.request.digest && atHorizon(t));
    expect(trials[0]).toMatchObject({ source: 'history', recipe: warm!.recipe });
    expect(trials[0]!.summary).toContain(old.name);
    const replay = (warm!.recipe as { replayRatio: number }).replayRatio;
    expect(trials[1]).toMatchObject({ source: 'repair', toStep: warm!.toStep, recipe: { ...warm!.recipe, replayRatio: Math.min(0.9, replay + 0.3) } });
    // `search.repair: false` (here for one drop) turns it off.
    const third = await sendDrop(loop, line, writeDrop('f.jsonl', 7, 30), { recipe: { search: { width: 2, repair: false } } });
    expect((await waitForCycle(loop.client, line, third.request.digest)).verdict).toBe('rejected');
    const without = (await loop.registry.listTrials(line)).filter((t) => t.dropDigest === third.request.digest);
    expect(without[0]).toMatchObject({ source: 'history', recipe: warm!.recipe });
    expect(without.some((t) => t.source === 'repair')).toBe(false);
  });

  it("stops an update that is below every passing update of the line's record at a judged step, and rejects the drop there", async () => {
    const line = `stopped-${suffix}`;
    const spec = await loop.createLine(line, { recipe: { search: { width: 2 } } });
    const { search: _search, ...recipe } = spec.recipe;
    void _search;
    // The line's record: two updates of its recipe (60 steps: judged at 5, 10 and 20) that passed, with margin 0.9
    // at every judged step; one of them chosen, so the line's recipe is the warm start.
    const steps = [5, 10, 20, 60];
    for (const [k, status] of [
      ['a', 'chosen'],
      ['b', 'passed'],
    ] as const)
      await loop.registry.recordTrials({
        line,
        cycleKey: `earlier-${k}`,
        cycleId: `cycle:${line}:earlier-${k}`,
        dropDigest: null,
        features: { trainRecords: 20, newSuites: 1 },
        trials: steps.map((toStep, rung) => ({
          trial: 't1',
          rung,
          bracket: 0,
          source: 'history',
          recipe,
          fromStep: rung ? steps[rung - 1]! : 0,
          toStep,
          flops: 1e9,
          wallMs: 10,
          metrics: {},
          margin: 0.9,
          pass: toStep === 60,
          status: toStep === 60 ? status : 'kept',
          summary: 'an earlier update',
        })),
      });
    const { request } = await sendDrop(loop, line, writeDrop('g.jsonl', 8, 30));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('rejected');
    expect(summary.reason).toMatch(/stopped early: the history recipe's update \(60 steps\) was below every passing update of the line's record at step 5/);
    const trials = (await loop.registry.listTrials(line)).filter((t) => t.dropDigest === request.digest);
    expect(trials).toHaveLength(1);
    expect(trials[0]).toMatchObject({ source: 'history', fromStep: 0, toStep: 5, status: 'pruned', recipe });
    expect(trials[0]!.summary).toMatch(
      /^stopped at step 5 of 60: margin -?[\d.]+ is below the lowest of the line's 2 passing update\(s\) of this schedule at that step \(0\.9000\) by more than 0\.2/,
    );
    const history = await loop.client.workflow.getHandle(`${summary.cycleId}:search`).fetchHistory();
    const scheduled = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runRecipeTrial');
    expect(scheduled).toHaveLength(1);
    // `search.stopEarly: false` (here for one drop) runs the warm start to its horizon in one segment.
    const again = await sendDrop(loop, line, writeDrop('h.jsonl', 9, 30), { recipe: { search: { width: 2, stopEarly: false } } });
    await waitForCycle(loop.client, line, again.request.digest);
    const whole = (await loop.registry.listTrials(line)).filter((t) => t.dropDigest === again.request.digest);
    expect(whole[0]).toMatchObject({ source: 'history', rung: 0, fromStep: 0, toStep: 60 });
    expect(whole.some((t) => t.status === 'pruned' && t.summary.startsWith('stopped at'))).toBe(false);
  });
});
