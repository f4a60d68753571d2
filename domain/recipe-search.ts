/**
 * The recipe search (issue 15): successive halving over learning rate, steps, warmup, replay ratio and L2 pull,
 * cheapest first, under a compute budget. Pure and deterministic: the caller runs the trials (the search child
 * workflow through training-queue activities, the tuning benchmark in process) and judges them with the gate;
 * this module decides which trials run, which are continued from their checkpoints and which are pruned.
 *
 * Shape of the search: brackets of rising horizon (steps), S/8, S/4, S/2 of the base recipe's S, then the base
 * recipe itself as the last resort. In a bracket every trial trains to half its horizon (rung 0), the better half
 * by gate margin continues from its rung-0 checkpoint to the full horizon (rung 1, an exact resume: the same
 * recipe), and each finished trial is judged by the gate. The first bracket with a trial that passes with the
 * margin ends the search: its cheapest, best-margin trial is the recipe, and its weights are the candidate. The
 * next bracket takes the best configurations of the one before at twice the horizon. Before all of it, recipes
 * that passed on this line's earlier (and most similar) drops are tried alone at their own horizon, so a stable
 * line converges in one trial. The base recipe's own compute is held back from the budget for the last resort (when
 * the budget covers it), so a search never fails a drop the base recipe alone would have passed for want of budget,
 * and the base recipe is taken when it passes even below the margin asked (it is what the line would have trained).
 * A warm start or the base recipe that fails because the update forgot (an old suite failed, not the drop's) is
 * tried again at its horizon with more replay, when the budget covers it without the base recipe's share: a
 * cheaper recipe would not keep more of the old ground, more rehearsal of it can.
 * With `stopEarly`, a trial run alone to its horizon (a warm start, a repair, the base recipe) is judged on its way, at
 * fixed fractions of its horizon, and stopped as hopeless when its margin there is below every passing update of
 * the line's record with the same schedule by more than a slack (the median stopping rule of Google Vizier, made
 * conservative: the worst passing update, not the median): the drop is then rejected without the rest of the
 * search, since the line's own record says a recipe it knows does not get there.
 */
import type { GateDecision, GateSuite } from '../schemas/contracts/gate.ts';

/** The searched part of a recipe. */
export interface Knobs {
  steps: number;
  learningRate: number;
  minLearningRate: number;
  warmupSteps: number;
  replayRatio: number;
  l2Pull: number;
}

export interface TrialPlan {
  id: string;
  knobs: Knobs;
  /** 0: the warm start from history; 1..: brackets of rising horizon. */
  bracket: number;
  source: 'history' | 'grid' | 'base' | 'repair';
}

/** One training segment of a trial: from `fromStep` (0, or its checkpoint `resume`) up to `toStep`. */
export interface TrialRun {
  trial: TrialPlan;
  rung: number;
  fromStep: number;
  toStep: number;
  resume?: string;
}

export type TrialOutcome =
  | {
      ok: true;
      steps: number;
      flops: number;
      wallMs: number;
      checkpoint?: string;
      weights?: string;
      metrics: Record<string, Record<string, number | undefined>>;
      /** The trained weights' plasticity ratio, when the runner measured it (the gate has a plasticity floor). */
      plasticity?: number;
    }
  | { ok: false; error: string };

export interface Judged {
  pass: boolean;
  margin: number;
  summary: string;
  /** The update failed on a suite it was not trained for (an earlier drop's, or the general text): it forgot. */
  forgot?: boolean;
}

/** A gate decision as the search reads it: verdict, margin, and whether an old suite (not the drop's) failed. Pure. */
export function judgedOf(decision: GateDecision, suites: GateSuite[]): Judged {
  const old = new Set(suites.filter((s) => !s.isNew).map((s) => s.name));
  return {
    pass: decision.verdict === 'pass',
    margin: gateMargin(decision),
    summary: decision.summary,
    forgot: decision.suites.some((s) => !s.pass && old.has(s.suite)),
  };
}

export type TrialStatus = 'chosen' | 'passed' | 'kept' | 'pruned' | 'failed' | 'rejected';

/** A trial segment as it goes on the record. */
export interface TrialRecord {
  trial: string;
  rung: number;
  bracket: number;
  source: TrialPlan['source'];
  knobs: Knobs;
  fromStep: number;
  toStep: number;
  /** Compute of this segment (the rung-1 segment counts only the steps after the resume). */
  flops: number;
  wallMs: number;
  metrics: Record<string, Record<string, number | undefined>>;
  margin: number | null;
  pass: boolean;
  /** Whether this segment finished the trial's recipe (its horizon): only those can be chosen. */
  complete: boolean;
  summary: string;
  /** The gate failed it on a suite it was not trained for (see Judged). */
  forgot?: boolean;
  status: TrialStatus;
  checkpoint?: string;
  weights?: string;
}

export interface SearchOutcome {
  chosen: TrialRecord | null;
  /** The trial stopped as hopeless (see StopEarly), when one was: the search ended there. */
  stoppedEarly?: TrialRecord;
  /** The best complete trial by margin (the one a rejection reports), else the best segment. */
  best: TrialRecord | null;
  trials: TrialRecord[];
  flops: number;
  reason: string;
}

/** A passing update's gate margins part-way through its horizon: what the line's updates that went on to pass looked like. */
export interface Trajectory {
  /** The schedule it ran (scheduleKey): only updates of the same schedule are compared step by step. */
  schedule: string;
  /** The margin at each judged step before the horizon. */
  points: { step: number; margin: number }[];
}

/** Early stopping of hopeless updates from the line's record (see the module comment). */
export interface StopEarly {
  /** Fractions of a trial's horizon at which it is judged on its way (default STOP_EARLY.at). */
  at: number[];
  /** How far below the lowest passing margin at a step a trial must be to be stopped (gate-margin units). */
  slack: number;
  /** Passing updates of the same schedule the record needs at a step before any trial is stopped there. */
  minPassing: number;
  /** The line's passing trajectories. */
  passing: Trajectory[];
}

/** The defaults of `stopEarly`: judged at 1/12, 1/6 and 1/3 of the horizon, a slack of 0.2, two passing updates on record. */
export const STOP_EARLY = { at: [1 / 12, 1 / 6, 1 / 3], slack: 0.2, minPassing: 2 } as const;

/**
 * The default budget of a search, as a multiple of the base recipe's training FLOPs: the base recipe (held back as
 * the last resort) and half of it again for everything else. At 1.5 no second full-length trial fits after a first
 * that failed (a repair, a second warm start: that takes 2); measured on bench:tune's streams (README), 1.5 spends
 * 0.45-0.50 of the fixed recipe's compute with the drops and margins of the fixed recipe, 2 spends 0.63-1.18 and its
 * second full-length trials passed 3 of the 5 drops they ran on, each one the fixed recipe rejects.
 */
export const SEARCH_BUDGET = 1.5;
/** The default budget of searches started before SEARCH_BUDGET (their histories replay with it). */
export const SEARCH_BUDGET_BEFORE = 2;

/** A segment the early stop ended: only trials run alone are judged on their way, and only the stop prunes them (grid trials are pruned by the halving). */
export const isStoppedEarly = (t: { status: string; source: string }) => t.status === 'pruned' && t.source !== 'grid';

/** The part of a recipe that shapes its margin over the horizon: horizon, peak and floor rate, warmup. */
export type Schedule = Pick<Knobs, 'steps' | 'learningRate' | 'minLearningRate' | 'warmupSteps'>;
export const scheduleKey = (k: Schedule) => `${k.steps}/${k.learningRate}/${k.minLearningRate}/${k.warmupSteps}`;

/** The steps at which a trial of `steps` is judged on its way: each fraction of its horizon, rounded, strictly inside it. */
export function watchedSteps(steps: number, at: readonly number[]): number[] {
  return [...new Set(at.map((f) => Math.round(f * steps)))].filter((s) => s >= 1 && s < steps).sort((a, b) => a - b);
}

/**
 * The trajectory of one trial's segments when it passed at its horizon, else null: its judged margins before the
 * horizon. Pure; the search's records and the registry's rows both give it.
 */
export function passingTrajectory(knobs: Schedule, segments: { toStep: number; margin: number | null; pass: boolean }[]): Trajectory | null {
  if (!segments.some((s) => s.toStep >= knobs.steps && s.pass)) return null;
  const points = segments.filter((s) => s.toStep < knobs.steps && s.margin !== null).map((s) => ({ step: s.toStep, margin: s.margin! }));
  return points.length ? { schedule: scheduleKey(knobs), points: points.sort((a, b) => a.step - b.step) } : null;
}

/** The passing trajectories among a search's trial records (one per trial that passed at its horizon). Pure. */
export function passingTrajectories(trials: TrialRecord[]): Trajectory[] {
  const byTrial = new Map<string, TrialRecord[]>();
  for (const t of trials) byTrial.set(t.trial, [...(byTrial.get(t.trial) ?? []), t]);
  return [...byTrial.values()].flatMap((segs) => passingTrajectory(segs[0]!.knobs, segs) ?? []);
}

export interface SearchOptions {
  base: Knobs;
  /** Recipes that passed on earlier drops, nearest (most similar drop) first. */
  history: Knobs[];
  budgetFlops: number;
  flopsPerStep: number;
  /** The least gate margin a chosen trial needs (see gateMargin). */
  margin: number;
  /** Trials in the first bracket (default 4). */
  width?: number;
  /** At most this many warm-start trials (default 2). */
  warm?: number;
  /** Hold the base recipe's compute back for the last resort (default true; false is the plan before that rule, for histories that ran it). */
  reserveBase?: boolean;
  /**
   * The base recipe as the last resort is chosen when it passes, even below `margin` (default true): it is what the
   * line would have trained without a search, so a search never rejects a drop the base recipe passes.
   */
  baseOnPass?: boolean;
  /**
   * Every bracket scales its configurations from the grid's full-horizon recipes (default true). False is the plan
   * before that rule, for histories that ran it: each bracket rescaled the one before, and the warmup's rounding
   * drifted (20 of 300 steps became 3 at 38, 6 at 75, 12 at 150 instead of 10).
   */
  rescaleFromGrid?: boolean;
  /**
   * A recipe of the line's (a warm start, or the base recipe) that failed because the update forgot is tried again
   * at its horizon with more replay (default true): the line learns the drop with that recipe but loses old
   * ground, and a cheaper recipe from the grid would not keep more of it. Once the base recipe has run, the compute
   * held back for it is free for the repair. False is the plan before that rule, for histories that ran it.
   */
  repair?: boolean;
  /** Judge trials run alone on their way and stop the hopeless ones (absent: each runs to its horizon in one segment). */
  stopEarly?: StopEarly;
  /** True when the wall-clock budget is spent (checked before every rung). */
  outOfTime?: () => boolean;
  run: (runs: TrialRun[]) => Promise<TrialOutcome[]>;
  /** `segment`: whether it finished the trial's recipe (what the gate judges) and its measured plasticity, if any. */
  judge: (metrics: Record<string, Record<string, number | undefined>>, segment?: { complete: boolean; plasticity?: number }) => Judged;
}

/**
 * How far a decision clears the gate: the smallest slack over the suites that had a bound (loss: the fraction
 * of the bound left, (bound − loss) / bound; exact match: points above the bound), negative when a suite failed;
 * a suite without a result counts as −1. Pure.
 */
export function gateMargin(decision: GateDecision): number {
  let m = Number.POSITIVE_INFINITY;
  for (const s of decision.suites) {
    if (s.candidate === null) m = Math.min(m, -1);
    else if (s.bound !== null) m = Math.min(m, s.metric === 'loss' ? (s.bound - s.candidate) / Math.abs(s.bound || 1) : s.candidate - s.bound);
    else if (!s.pass) m = Math.min(m, -1);
  }
  if (decision.plasticity && !decision.plasticity.pass) m = Math.min(m, -1);
  return Number.isFinite(m) ? m : decision.verdict === 'pass' ? 0 : -1;
}

const round = (x: number) => Math.max(1, Math.round(x));
/** A repair's replay ratio: 0.3 more, at most 0.9 (some of every batch stays the new drop). */
const moreReplay = (r: number) => Math.min(0.9, Math.round((r + 0.3) * 100) / 100);
const clampLr = (x: number) => Math.min(0.05, Math.max(1e-6, x));

/** `knobs` at another horizon: warmup scaled with it (at most a quarter), the floor of the rate kept below the rate. */
export function atHorizon(k: Knobs, steps: number): Knobs {
  const warmup = Math.min(Math.floor(steps / 4), Math.round((k.warmupSteps * steps) / Math.max(1, k.steps)));
  return { ...k, steps, warmupSteps: Math.max(0, warmup), minLearningRate: Math.min(k.minLearningRate, k.learningRate) };
}

/** The first bracket's configurations around `base` at `steps`: a short horizon wants a higher rate. */
export function gridAround(base: Knobs, steps: number, width: number): Knobs[] {
  const lr = base.learningRate;
  const floorRatio = base.learningRate > 0 ? base.minLearningRate / base.learningRate : 0.1;
  const at = (mult: number, replay: number, l2: number, warm = 1): Knobs => {
    const rate = clampLr(lr * mult);
    return atHorizon(
      {
        ...base,
        learningRate: rate,
        minLearningRate: rate * floorRatio,
        replayRatio: Math.min(0.95, Math.max(0, replay)),
        l2Pull: l2,
        warmupSteps: Math.round(base.warmupSteps * warm),
      },
      steps,
    );
  };
  const all = [
    at(2, base.replayRatio, base.l2Pull),
    at(4, base.replayRatio, base.l2Pull),
    at(2, base.replayRatio + 0.2, 0),
    at(1, base.replayRatio, base.l2Pull),
    at(4, base.replayRatio + 0.2, base.l2Pull, 0),
    at(8, base.replayRatio, 0),
  ];
  return all.slice(0, Math.max(1, width));
}

const better = (a: TrialRecord, b: TrialRecord) => (b.margin ?? -Infinity) - (a.margin ?? -Infinity);

/** Runs the search; see the module comment. Deterministic given the outcomes of `run`. */
export async function searchRecipe(o: SearchOptions): Promise<SearchOutcome> {
  const trials: TrialRecord[] = [];
  let spent = 0;
  let seq = 0;
  let stopped = '';
  const cost = (r: TrialRun) => (r.toStep - r.fromStep) * o.flopsPerStep;
  const key = (k: Knobs) => JSON.stringify(k);
  // Held back for the base recipe (the last resort) when the budget covers it; the base recipe's own runs may use it.
  const baseCost = o.base.steps * o.flopsPerStep;
  const reserve = o.reserveBase !== false && o.budgetFlops >= baseCost ? baseCost : 0;
  const repair = o.repair !== false;
  const baseRan = () => trials.some((t) => key(t.knobs) === key(o.base));
  // Once the base recipe has run (as a warm start), its held-back compute is free for a repair, and only for one:
  // short grid trials after it spent it and passed nothing on the full bench:tune stream.
  const limitOf = (k: Knobs, source: TrialPlan['source']) =>
    key(k) === key(o.base) || (repair && source === 'repair' && baseRan()) ? o.budgetFlops : o.budgetFlops - reserve;
  const limitFor = (r: TrialRun) => limitOf(r.trial.knobs, r.trial.source);

  /**
   * Runs what fits in the budget (in the order given) and records each segment. `need` is what a run must fit:
   * its own cost, or for the first segment of a trial judged on its way, the whole trial's (never start what the
   * budget cannot finish).
   */
  const runRung = async (runs: TrialRun[], need = cost): Promise<TrialRecord[]> => {
    if (o.outOfTime?.()) {
      stopped = 'the wall-clock budget is spent';
      return [];
    }
    const fit: TrialRun[] = [];
    let planned = spent;
    for (const r of runs) {
      if (planned + need(r) > limitFor(r)) continue;
      planned += need(r);
      fit.push(r);
    }
    if (fit.length < runs.length)
      stopped =
        `the compute budget (${o.budgetFlops.toExponential(2)} FLOPs` +
        (reserve && runs.some((r) => limitFor(r) < o.budgetFlops) ? `, ${reserve.toExponential(2)} of it held for the base recipe` : '') +
        `) does not cover ${runs.length - fit.length} more trial segment(s)`;
    if (!fit.length) return [];
    const outcomes = await o.run(fit);
    return fit.map((r, i) => {
      const out = outcomes[i]!;
      const complete = r.toStep >= r.trial.knobs.steps;
      const base = {
        trial: r.trial.id,
        rung: r.rung,
        bracket: r.trial.bracket,
        source: r.trial.source,
        knobs: r.trial.knobs,
        fromStep: r.fromStep,
        toStep: r.toStep,
        complete,
      };
      if (!out.ok) {
        // A trial that crashed past its retries is dropped; the others go on. Its planned compute still counts.
        spent += cost(r);
        const rec: TrialRecord = {
          ...base,
          flops: cost(r),
          wallMs: 0,
          metrics: {},
          margin: null,
          pass: false,
          summary: `failed: ${out.error}`,
          status: 'failed',
        };
        trials.push(rec);
        return rec;
      }
      spent += out.flops;
      const j = o.judge(out.metrics, { complete, ...(out.plasticity !== undefined ? { plasticity: out.plasticity } : {}) });
      const rec: TrialRecord = {
        ...base,
        flops: out.flops,
        wallMs: out.wallMs,
        metrics: out.metrics,
        margin: j.margin,
        pass: j.pass,
        summary: j.summary,
        ...(j.forgot ? { forgot: true } : {}),
        status: 'kept',
        ...(out.checkpoint ? { checkpoint: out.checkpoint } : {}),
        ...(out.weights ? { weights: out.weights } : {}),
      };
      trials.push(rec);
      return rec;
    });
  };

  /** The passing complete trials of `recs`, cheapest first, then by margin. */
  const winners = (recs: TrialRecord[], least: number) =>
    recs.filter((r) => r.complete && r.pass && (r.margin ?? -Infinity) >= least).sort((a, b) => a.toStep - b.toStep || better(a, b));
  const choose = (recs: TrialRecord[], least = o.margin): TrialRecord | null => {
    const w = winners(recs, least)[0];
    if (!w) return null;
    w.status = 'chosen';
    for (const r of recs) if (r !== w && r.complete && r.pass) r.status = 'passed';
    return w;
  };
  const plan = (knobs: Knobs, bracket: number, source: TrialPlan['source']): TrialPlan => ({ id: `t${++seq}`, knobs, bracket, source });
  let stoppedEarly: TrialRecord | undefined;
  const done = (chosen: TrialRecord | null, reason: string): SearchOutcome => {
    const complete = trials.filter((t) => t.complete && t.margin !== null).sort(better);
    const best = chosen ?? complete[0] ?? [...trials].filter((t) => t.margin !== null).sort(better)[0] ?? null;
    if (!chosen) for (const t of trials) if (t.status === 'kept' && t.complete) t.status = 'rejected';
    return { chosen, best, trials, flops: spent, reason, ...(stoppedEarly ? { stoppedEarly } : {}) };
  };

  const watch = o.stopEarly;
  /** The lowest margin at `step` over the record's passing updates of `k`'s schedule, when there are enough of them. */
  const envelope = (k: Knobs, step: number) => {
    const at = (watch?.passing ?? []).filter((t) => t.schedule === scheduleKey(k)).flatMap((t) => t.points.filter((p) => p.step === step).map((p) => p.margin));
    return watch && at.length >= Math.max(1, watch.minPassing) ? { lowest: Math.min(...at), count: at.length } : null;
  };
  /**
   * One trial alone at its horizon (a warm start, a repair, the base recipe). With `stopEarly`, in segments judged
   * at the watched steps, each resumed from the one before's checkpoint (an exact resume); a segment below the
   * envelope by more than the slack is marked pruned and the trial stops there (`stoppedEarly`).
   */
  const runWhole = async (p: TrialPlan): Promise<TrialRecord[]> => {
    const steps = p.knobs.steps;
    const ends = [...(watch ? watchedSteps(steps, watch.at) : []), steps];
    const recs: TrialRecord[] = [];
    let from = 0;
    let resume: string | undefined;
    for (const [rung, to] of ends.entries()) {
      const r: TrialRun = { trial: p, rung, fromStep: from, toStep: to, ...(resume ? { resume } : {}) };
      const [rec] = await runRung([r], (x) => (steps - x.fromStep) * o.flopsPerStep);
      if (!rec) break;
      recs.push(rec);
      if (rec.complete || rec.margin === null) break;
      const env = envelope(p.knobs, to);
      if (env && rec.margin < env.lowest - watch!.slack) {
        rec.status = 'pruned';
        rec.summary =
          `stopped at step ${to} of ${steps}: margin ${rec.margin.toFixed(4)} is below the lowest of the line's ${env.count} passing ` +
          `update(s) of this schedule at that step (${env.lowest.toFixed(4)}) by more than ${watch!.slack}; ${rec.summary}`;
        stoppedEarly = rec;
        break;
      }
      // Without a checkpoint (a runner that keeps none) the rest trains from the start again, and is charged so.
      [from, resume] = rec.checkpoint ? [to, rec.checkpoint] : [0, undefined];
    }
    return recs;
  };
  const hopeless = () =>
    stoppedEarly
      ? `stopped early: the ${stoppedEarly.source} recipe's update (${stoppedEarly.knobs.steps} steps) was below every passing update of ` +
        `the line's record at step ${stoppedEarly.toStep} by more than the slack, so the drop is rejected without the rest of the search`
      : '';

  /**
   * The repair of a complete trial that failed because it forgot: its recipe with more replay, alone at its
   * horizon (with `repair`, when the budget covers it and that recipe has not run). Chosen when it passes.
   */
  const repaired = async (failed: TrialRecord | undefined, bracket: number): Promise<TrialRecord | null> => {
    // (Only a judged failure carries `forgot`: not a pass, not a crashed trial; and only at its horizon.)
    if (!repair || !failed?.forgot || !failed.complete) return null;
    const k = { ...failed.knobs, replayRatio: moreReplay(failed.knobs.replayRatio) };
    if (k.replayRatio <= failed.knobs.replayRatio || seen.has(key(k))) return null;
    // Only when it fits: the compute held back for the base recipe stays for it, and the search goes on without.
    if (spent + k.steps * o.flopsPerStep > limitOf(k, 'repair')) return null;
    seen.add(key(k));
    return choose(await runWhole(plan(k, bracket, 'repair')));
  };

  // Warm start: recipes that passed before, each alone at its own horizon (one rung: no halving of one).
  const seen = new Set<string>();
  const warm = o.history.filter((k) => (seen.has(key(k)) ? false : (seen.add(key(k)), true))).slice(0, o.warm ?? 2);
  for (const k of warm) {
    const recs = await runWhole(plan(k, 0, 'history'));
    const w = choose(recs);
    if (w) return done(w, `a recipe that passed on an earlier drop passed again (${k.steps} steps, margin ${w.margin!.toFixed(4)})`);
    if (stopped || stoppedEarly) break;
    const r = await repaired(recs.at(-1), 0);
    if (r)
      return done(
        r,
        `a recipe that passed on an earlier drop forgot; with replay ${r.knobs.replayRatio} it passed (${k.steps} steps, margin ${r.margin!.toFixed(4)})`,
      );
    if (stopped || stoppedEarly) break;
  }

  const S = o.base.steps;
  const horizons = [...new Set([round(S / 8), round(S / 4), round(S / 2)])].filter((h) => h < S);
  const fromGrid = o.rescaleFromGrid !== false;
  let configs = gridAround(o.base, fromGrid ? S : (horizons[0] ?? S), o.width ?? 4);
  // Each grid trial's configuration before scaling to its bracket's horizon: the next bracket scales it again.
  const origin = new Map<string, Knobs>();
  for (let b = 0; b < horizons.length && !stopped && !stoppedEarly; b++) {
    const h = horizons[b]!;
    const plans = configs
      .map((k) => {
        const p = plan(atHorizon(k, h), b + 1, 'grid');
        origin.set(p.id, k);
        return p;
      })
      .filter((p) => !seen.has(key(p.knobs)));
    for (const p of plans) seen.add(key(p.knobs));
    const half = Math.floor(h / 2);
    let finalists: { plan: TrialPlan; resume?: string; from: number }[] = plans.map((p) => ({ plan: p, from: 0 }));
    if (half >= 1 && plans.length > 1) {
      const rung0 = await runRung(plans.map((p) => ({ trial: p, rung: 0, fromStep: 0, toStep: half })));
      if (!rung0.length) {
        stopped ||= 'no trial could run';
        break;
      }
      const ranked = rung0.filter((r) => r.status !== 'failed').sort(better);
      const keep = ranked.slice(0, Math.ceil(plans.length / 2));
      for (const r of ranked.slice(keep.length)) r.status = 'pruned';
      finalists = keep.map((r) => ({ plan: plans.find((p) => p.id === r.trial)!, resume: r.checkpoint, from: r.checkpoint ? r.toStep : 0 }));
    }
    const rung1 = await runRung(finalists.map((f) => ({ trial: f.plan, rung: 1, fromStep: f.from, toStep: h, ...(f.resume ? { resume: f.resume } : {}) })));
    const w = choose(rung1);
    if (w)
      return done(
        w,
        `the cheapest passing recipe: ${h} steps, lr ${w.knobs.learningRate}, margin ${w.margin!.toFixed(4)} after ${trials.length} trial segment(s)`,
      );
    if (stopped) break;
    // The next bracket: the best two configurations of this one at twice the horizon.
    const next = rung1
      .filter((r) => r.margin !== null)
      .sort(better)
      .slice(0, 2)
      .map((r) => (fromGrid ? origin.get(r.trial)! : r.knobs));
    configs = next.length ? next : configs.slice(0, 2);
  }
  // Last resort: the base recipe as given (its compute was held back), unless it already ran or time is out.
  // (A warm start the budget stopped before it ran does not count: with `repair`, only a base trial that ran.)
  if (!stoppedEarly && !(repair ? baseRan() : seen.has(key(o.base)))) {
    const before = stopped;
    stopped = '';
    const recs = await runWhole(plan(o.base, horizons.length + 1, 'base'));
    const w = choose(recs);
    if (w)
      return done(w, `only the base recipe passed (${S} steps, margin ${w.margin!.toFixed(4)})${before ? `; the trials before it stopped: ${before}` : ''}`);
    const r = await repaired(recs.at(-1), horizons.length + 1);
    if (r) return done(r, `the base recipe forgot; with replay ${r.knobs.replayRatio} it passed (${S} steps, margin ${r.margin!.toFixed(4)})`);
    stopped ||= before;
  }
  // The base recipe (as the last resort or as a warm start) passed, below the margin: still what the line would have trained.
  if (o.baseOnPass !== false) {
    const w = choose(
      trials.filter((t) => key(t.knobs) === key(o.base)),
      -Infinity,
    );
    if (w)
      return done(
        w,
        `only the base recipe passed (${S} steps, margin ${w.margin!.toFixed(4)}, below the ${o.margin} asked)${stopped ? `; the trials before it stopped: ${stopped}` : ''}`,
      );
  }
  return done(null, hopeless() || stopped || `no recipe passed the gate with margin ${o.margin} within ${trials.length} trial segment(s)`);
}

/** Distance between two drops' features (relative size and new-suite count), for ordering warm-start recipes. */
export function dropDistance(a: DropFeatures, b: DropFeatures): number {
  const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(1, x, y);
  return (
    rel(a.trainRecords, b.trainRecords) +
    rel(a.newSuites, b.newSuites) +
    (a.plasticity !== undefined && b.plasticity !== undefined ? Math.abs(a.plasticity - b.plasticity) : 0)
  );
}

export interface DropFeatures {
  trainRecords: number;
  newSuites: number;
  plasticity?: number;
}
