/**
 * The release gate: a pure function from rules and measurements to a verdict with a reason per suite.
 * It runs in workflow code, so the decision is replayed, not recomputed, and shows in the history.
 *
 * Semantics (also in the README):
 * - Each suite is judged on one metric: `loss` (mean token loss on held-out text, lower is better) for
 *   text suites, `exactMatch` (share of probes answered exactly, higher is better) for probe suites.
 * - A suite with no candidate result fails. Never passes silently.
 * - Floors are absolute: loss at most `floors.loss`, exact match at least `floors.exactMatch`.
 * - With a champion, a suite from an earlier drop may regress by at most `maxRegression` (loss: a fraction
 *   of the champion's loss; exact match: points), and a suite of the new drop must improve by at least
 *   `minImprovement` (same units; exact match need not exceed 1). A champion without a result on a suite
 *   makes that suite fail, because the comparison cannot be made.
 * - A line's first version has no champion: the cycle passes what it replaces as the champion (an untrained
 *   model of its shape on the line's own suites, the foundation's stable version on the foundation's suites),
 *   so it must learn its drop and keep what its foundation could do. Without any comparison, floors alone apply.
 * - `minPlasticity` (off unless set): the candidate's plasticity ratio must be at least the bound; the
 *   decision's `plasticity` names the number, and a candidate without a measurement fails the rule.
 */

import type { GateDecision, GateInput, GateSuite, MetricName, Metrics, PlasticityVerdict, SuiteKind, SuiteVerdict } from '../schemas/contracts/gate.ts';
import type { Recipe } from '../schemas/io.ts';

// The shapes the gate reads and returns are contracts (results, messages and the registry carry them).
export type { GateDecision, GateInput, GateSuite, Metrics, MetricName, PlasticityVerdict, SuiteKind, SuiteVerdict } from '../schemas/contracts/gate.ts';

export const metricFor = (kind: SuiteKind): MetricName => (kind === 'text' ? 'loss' : 'exactMatch');

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(4));

/** Judges a candidate against its champion under `rules`. Pure and deterministic. */
export function evaluateGate(input: GateInput): GateDecision {
  const suites = input.suites.map((s) => judgeSuite(s, input));
  const failed = suites.filter((s) => !s.pass);
  const plasticity = judgePlasticity(input);
  const extra = plasticity ? { plasticity } : {};
  if (input.suites.length === 0) {
    return { verdict: 'fail', suites, summary: 'the line has no evaluation suites, so nothing shows the candidate is fit', ...extra };
  }
  const failures = [
    ...(failed.length ? [failed.map((s) => s.suite).join(', ')] : []),
    ...(plasticity && !plasticity.pass
      ? [plasticity.ratio === null ? 'plasticity (not measured)' : `plasticity ${fmt(plasticity.ratio)} (needed >= ${fmt(plasticity.bound)} of a fresh model)`]
      : []),
  ];
  return {
    ...extra,
    verdict: failures.length ? 'fail' : 'pass',
    suites,
    summary: failures.length
      ? `failed on ${failures.join('; ')}`
      : input.champion
        ? `passed all ${suites.length} suites against ${input.baseline ?? 'the champion'}`
        : `passed the floors of all ${suites.length} suites (nothing to compare with)`,
  };
}

function judgeSuite(suite: GateSuite, input: GateInput): SuiteVerdict {
  const metric = metricFor(suite.kind);
  const lowerIsBetter = metric === 'loss';
  const override = input.rules.suites?.[suite.name];
  const floor = override?.floors?.[metric] ?? input.rules.floors[metric];
  const maxRegression = override?.maxRegression?.[metric] ?? input.rules.maxRegression[metric];
  const minImprovement = input.rules.minImprovement[metric];
  const cand = input.candidate[suite.name]?.[metric];
  const champ = input.champion?.[suite.name]?.[metric];
  const base = { suite: suite.name, metric, candidate: finite(cand), champion: finite(champ) };

  if (input.candidate[suite.name]?.retired) {
    return { ...base, bound: null, pass: true, reason: 'every record was superseded by newer data; the suite is retired' };
  }
  if (base.candidate === null) return { ...base, bound: null, pass: false, reason: `no ${metric} result for the candidate` };
  const c = base.candidate;
  if (floor !== undefined && (lowerIsBetter ? c > floor : c < floor)) {
    return { ...base, bound: floor, pass: false, reason: `${metric} ${fmt(c)} is ${lowerIsBetter ? 'above' : 'below'} the floor ${fmt(floor)}` };
  }
  if (!input.champion) {
    return {
      ...base,
      bound: floor ?? null,
      pass: true,
      reason: floor === undefined ? 'nothing to compare with and no floor' : `within the floor ${fmt(floor)} (nothing to compare with)`,
    };
  }
  if (base.champion === null) return { ...base, bound: null, pass: false, reason: `no ${metric} result for the champion, so no comparison` };
  const h = base.champion;

  if (suite.isNew) {
    const gain = minImprovement ?? 0;
    const bound = lowerIsBetter ? h * (1 - gain) : Math.min(1, h + gain);
    const pass = lowerIsBetter ? c <= bound : c >= bound;
    return {
      ...base,
      bound,
      pass,
      reason: pass
        ? `improved on the new data: ${fmt(h)} -> ${fmt(c)} (needed ${lowerIsBetter ? '<=' : '>='} ${fmt(bound)})`
        : `did not improve enough on the new data: ${fmt(h)} -> ${fmt(c)} (needed ${lowerIsBetter ? '<=' : '>='} ${fmt(bound)})`,
    };
  }
  if (maxRegression === undefined) return { ...base, bound: null, pass: true, reason: 'no regression bound set' };
  const bound = lowerIsBetter ? h * (1 + maxRegression) : h - maxRegression;
  const pass = lowerIsBetter ? c <= bound : c >= bound;
  return {
    ...base,
    bound,
    pass,
    reason: pass
      ? `within the regression bound: ${fmt(h)} -> ${fmt(c)} (allowed ${lowerIsBetter ? '<=' : '>='} ${fmt(bound)})`
      : `regressed: ${fmt(h)} -> ${fmt(c)} (allowed ${lowerIsBetter ? '<=' : '>='} ${fmt(bound)})`,
  };
}

/**
 * rules.minPlasticity: the candidate's plasticity ratio (probe reach against a fresh model) must be at least
 * the bound. Off (undefined verdict) when the rule is not set; a missing or non-finite measurement fails.
 */
function judgePlasticity(input: GateInput): PlasticityVerdict | undefined {
  const bound = input.rules.minPlasticity;
  if (bound === undefined) return undefined;
  const ratio = finite(input.plasticity?.ratio);
  if (ratio === null) return { ratio, bound, pass: false, reason: 'no plasticity measured for the candidate' };
  const pass = ratio >= bound;
  return { ratio, bound, pass, reason: `plasticity ${fmt(ratio)} of a fresh model is ${pass ? 'within' : 'below'} the bound ${fmt(bound)}` };
}

/** Whether a cycle measures its candidate's plasticity: when the gate judges it or the recipe defends it. */
export function wantsPlasticity(rules: GateInput['rules'], recipe: { plasticityFloor?: number }): boolean {
  return rules.minPlasticity !== undefined || recipe.plasticityFloor !== undefined;
}

/** An intervention as a recipe records it (schemas/io.ts Recipe.interventions). */
export type Intervention = NonNullable<Recipe['interventions']>[number];

/**
 * The interventions a cycle applies when the recipe sets a plasticityFloor and the version a candidate starts
 * from measured below it: to the starting weights shrink-and-perturb, then a reset of dormant MLP units; to the
 * training an L2 pull toward the initial weights instead of the parent ('l2-init') and the learning rate warmed
 * up again ('rewarm'). None otherwise (no floor, no measurement, or at or above the floor).
 */
export function planInterventions(floor: number | undefined, ratio: number | undefined): Intervention[] {
  if (floor === undefined || ratio === undefined || !Number.isFinite(ratio) || ratio >= floor) return [];
  return ['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm'];
}

/** Strength of the 'l2-init' pull toward the initial weights when the recipe's own pull is weaker (L2 Init, Kumar et al. 2023). */
export const L2_INIT_PULL = 1e-3;

/** The recipe a cycle trains with under `interventions`: they are recorded in it, with the training fields they change. */
export function interventionRecipe<R extends { l2Pull: number; rewarm: boolean; interventions?: Intervention[]; l2Anchor?: 'parent' | 'init' }>(recipe: R, interventions: Intervention[]): R {
  if (!interventions.length) return recipe;
  return {
    ...recipe,
    interventions,
    ...(interventions.includes('rewarm') ? { rewarm: true } : {}),
    ...(interventions.includes('l2-init') ? { l2Anchor: 'init' as const, l2Pull: Math.max(recipe.l2Pull, L2_INIT_PULL) } : {}),
  };
}

function finite(x: number | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

/** Default bound on the negative flip rate of an upgrade (the issue's 2%). */
export const DEFAULT_MAX_NEGATIVE_FLIP_RATE = 0.02;
/** Default share of the new foundation's own gain an upgraded model keeps on each foundation suite (the issue's half). */
export const DEFAULT_MIN_FOUNDATION_GAIN_SHARE = 0.5;

export interface InheritanceInput {
  /** The suites both models were measured on; `foundation` marks the foundation's general suites. */
  suites: { name: string; kind: SuiteKind; foundation: boolean }[];
  /** The upgraded model and the application model it replaces (its teacher). */
  candidate: Record<string, Metrics>;
  old: Record<string, Metrics>;
  maxRegression: { loss?: number; exactMatch?: number };
  maxNegativeFlipRate: number;
  /**
   * The old and the new foundation version on the foundation suites, and the share of the new one's gain (new
   * minus old, per suite) the upgraded model must add over the old application model. Absent: no gain check.
   */
  foundationGain?: { oldFoundation: Record<string, Metrics>; newFoundation: Record<string, Metrics>; minShare: number };
}

/**
 * The inheritance gate of a foundation upgrade, on top of the line's own gate: every application suite within
 * `maxRegression` of the old application model; every foundation suite at least as good as the old model's; and
 * the negative flip rate over the probe suites at most the bound. A probe suite's flips are `negativeFlips` of
 * `probes` when the evaluation counts them; otherwise the drop in exact match is used, which is a lower bound on
 * the flips (a probe gained elsewhere can hide one lost). Each number is named in the verdicts. Pure.
 */
export function evaluateInheritance(input: InheritanceInput): GateDecision {
  const verdicts: SuiteVerdict[] = [];
  for (const s of input.suites) {
    const metric = metricFor(s.kind);
    const lower = metric === 'loss';
    const c = finite(input.candidate[s.name]?.[metric]);
    const h = finite(input.old[s.name]?.[metric]);
    const base = { suite: `inherit:${s.name}`, metric, candidate: c, champion: h };
    if (input.candidate[s.name]?.retired) {
      verdicts.push({ ...base, bound: null, pass: true, reason: 'retired suite' });
      continue;
    }
    if (c === null || h === null) {
      verdicts.push({ ...base, bound: null, pass: false, reason: `no ${metric} result for the ${c === null ? 'upgraded' : 'old'} model` });
      continue;
    }
    const allowed = s.foundation ? 0 : (input.maxRegression[metric] ?? 0);
    const bound = lower ? h * (1 + allowed) : h - allowed;
    const pass = lower ? c <= bound : c >= bound;
    const what = s.foundation ? 'the old application model on a foundation suite' : 'the old application model';
    verdicts.push({
      ...base,
      bound,
      pass,
      reason: `${pass ? 'kept' : 'lost'} against ${what}: ${fmt(h)} -> ${fmt(c)} (allowed ${lower ? '<=' : '>='} ${fmt(bound)})`,
    });
  }
  if (input.foundationGain && input.foundationGain.minShare > 0) verdicts.push(...judgeFoundationGain(input, input.foundationGain));
  const probes = input.suites.filter((s) => s.kind === 'probe');
  let flips = 0;
  let total = 0;
  let counted = true;
  for (const s of probes) {
    const cand = input.candidate[s.name];
    const n = cand?.probes;
    if (typeof cand?.negativeFlips === 'number' && typeof n === 'number') {
      flips += cand.negativeFlips;
      total += n;
    } else {
      counted = false;
      // Without per-probe results each suite counts as one unit: its loss in exact match, a lower bound on its flip rate.
      flips += Math.max(0, (input.old[s.name]?.exactMatch ?? 0) - (cand?.exactMatch ?? 0));
      total += 1;
    }
  }
  if (probes.length) {
    const rate = total > 0 ? flips / total : 0;
    const pass = rate <= input.maxNegativeFlipRate;
    verdicts.push({
      suite: 'inherit:negative-flips',
      metric: 'exactMatch',
      candidate: rate,
      champion: 0,
      bound: input.maxNegativeFlipRate,
      pass,
      reason: `negative flip rate ${fmt(rate)}${counted ? ` (${flips} of ${total} probes)` : ''} over ${probes.length} probe suite(s)${counted ? '' : ' (lower bound from exact match)'} (allowed <= ${fmt(input.maxNegativeFlipRate)})`,
    });
  }
  const failed = verdicts.filter((v) => !v.pass);
  return {
    verdict: failed.length ? 'fail' : 'pass',
    suites: verdicts,
    summary: failed.length ? `inheritance failed on ${failed.map((v) => v.suite).join(', ')}` : `inherited all ${verdicts.length} checks from the old application model`,
  };
}

/**
 * Per foundation suite where the new foundation version gained over the old one (signed: loss down, exact match
 * up), the upgraded model's gain over the old application model must be at least `minShare` of that gain. A
 * suite where the new foundation gained nothing passes (there is nothing to keep); a missing number fails.
 */
function judgeFoundationGain(input: InheritanceInput, g: NonNullable<InheritanceInput['foundationGain']>): SuiteVerdict[] {
  const out: SuiteVerdict[] = [];
  for (const s of input.suites.filter((x) => x.foundation)) {
    const metric = metricFor(s.kind);
    const sign = metric === 'loss' ? -1 : 1;
    const c = finite(input.candidate[s.name]?.[metric]);
    const h = finite(input.old[s.name]?.[metric]);
    const fOld = finite(g.oldFoundation[s.name]?.[metric]);
    const fNew = finite(g.newFoundation[s.name]?.[metric]);
    const base = { suite: `inherit-gain:${s.name}`, metric, candidate: c, champion: h };
    if (input.candidate[s.name]?.retired) continue;
    if (c === null || h === null || fOld === null || fNew === null) {
      const who = c === null ? 'upgraded model' : h === null ? 'old application model' : fOld === null ? 'old foundation version' : 'new foundation version';
      out.push({ ...base, bound: null, pass: false, reason: `no ${metric} result for the ${who}, so the foundation's gain cannot be checked` });
      continue;
    }
    const foundationGain = sign * (fNew - fOld);
    if (foundationGain <= 0) {
      out.push({ ...base, bound: null, pass: true, reason: `the new foundation gained nothing here (${fmt(fOld)} -> ${fmt(fNew)}): nothing to keep` });
      continue;
    }
    const needed = g.minShare * foundationGain;
    const gained = sign * (c - h);
    const bound = h + sign * needed;
    const pass = gained >= needed;
    out.push({
      ...base,
      bound,
      pass,
      reason: `${pass ? 'kept' : 'did not keep'} ${fmt(gained / foundationGain)} of the new foundation's gain (${fmt(fOld)} -> ${fmt(fNew)}): ${fmt(h)} -> ${fmt(c)} (needed ${sign < 0 ? '<=' : '>='} ${fmt(bound)}, share ${fmt(g.minShare)})`,
    });
  }
  return out;
}

/** Both gates as one decision: it passes when both pass, and names every number of each. */
export function combineGates(line: GateDecision, inheritance: GateDecision): GateDecision {
  return {
    verdict: line.verdict === 'pass' && inheritance.verdict === 'pass' ? 'pass' : 'fail',
    suites: [...line.suites, ...inheritance.suites],
    summary: `${line.summary}; ${inheritance.summary}`,
  };
}
