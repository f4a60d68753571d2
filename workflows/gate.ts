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

import type { GateDecision, GateInput, GateSuite, MetricName, PlasticityVerdict, SuiteKind, SuiteVerdict } from '../schemas/contracts/gate.ts';

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

/**
 * The interventions a cycle applies to the weights a candidate starts from: both (shrink-and-perturb, then a
 * reset of dormant MLP units) when the recipe sets a plasticityFloor and the starting version measured below
 * it; none otherwise (no floor, no measurement, or at or above the floor).
 */
export function planInterventions(floor: number | undefined, ratio: number | undefined): ('shrink-perturb' | 'dormant-reset')[] {
  if (floor === undefined || ratio === undefined || !Number.isFinite(ratio) || ratio >= floor) return [];
  return ['shrink-perturb', 'dormant-reset'];
}

function finite(x: number | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}
