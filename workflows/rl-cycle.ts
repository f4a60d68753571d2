/**
 * The RL part of a feedback cycle's gate (issue 16), pure and bundle-safe: the RL update's held-out checks
 * become named gate checks beside the suites' — `rl:reward` (held-out reward must rise), `rl:gold` (the gold
 * check must not fall by more than the tolerance), `rl:kl` (KL to the released version within the budget) and
 * `rl:over-optimisation` (reward and gold did not diverge for consecutive checks), and with held-out ratings in
 * the feedback `rl:ratings` (agreement with them must not fall by more than the gold tolerance) — each with its
 * numbers in the reason. A feedback candidate passes only when the line's gate on every suite and all of these pass.
 */
import type { RlRecord } from '../activities/types.ts';
import type { GateDecision, SuiteVerdict } from '../schemas/contracts/gate.ts';
import type { CycleRlState } from '../schemas/contracts/messages.ts';
import type { Recipe } from '../schemas/io.ts';

const f = (x: number) => x.toFixed(3);

/** The RL checks of a run (four, five with held-out ratings), from its first (released model) and last held-out checks. */
export function rlChecks(rl: RlRecord): SuiteVerdict[] {
  const first = rl.checks[0]!;
  const last = rl.checks[rl.checks.length - 1]!;
  const g = rl.guard;
  const over = rl.verdict.reasons.find((r) => r.startsWith('over-optimisation'));
  const rewardBound = first.reward + g.minRewardGain;
  const goldBound = first.gold - g.goldTolerance;
  const rewardPass = last.reward - first.reward >= g.minRewardGain;
  const goldPass = last.gold >= goldBound;
  const klPass = last.kl <= g.klBudget;
  const ratings: SuiteVerdict[] = [];
  if (first.ratings !== undefined && last.ratings !== undefined) {
    const bound = first.ratings - g.goldTolerance;
    const pass = last.ratings >= bound;
    ratings.push({
      suite: 'rl:ratings',
      metric: 'ratingAgreement',
      candidate: last.ratings,
      champion: first.ratings,
      bound,
      pass,
      reason: `agreement with the held-out ratings ${f(first.ratings)} -> ${f(last.ratings)} (${pass ? 'within' : 'fell past'} the tolerance ${g.goldTolerance}; bound ${f(bound)})`,
    });
  }
  return [
    {
      suite: 'rl:reward',
      metric: 'reward',
      candidate: last.reward,
      champion: first.reward,
      bound: rewardBound,
      pass: rewardPass,
      reason: `held-out reward ${f(first.reward)} -> ${f(last.reward)} (${rewardPass ? 'rose' : 'did not rise'}; needs >= ${f(rewardBound)}) at step ${last.step}`,
    },
    {
      suite: 'rl:gold',
      metric: 'gold',
      candidate: last.gold,
      champion: first.gold,
      bound: goldBound,
      pass: goldPass,
      reason: `held-out gold ${f(first.gold)} -> ${f(last.gold)} (${goldPass ? 'within' : 'fell past'} the tolerance ${g.goldTolerance}; bound ${f(goldBound)})`,
    },
    {
      suite: 'rl:kl',
      metric: 'kl',
      candidate: last.kl,
      champion: 0,
      bound: g.klBudget,
      pass: klPass,
      reason: `KL to the released version ${last.kl.toFixed(4)} ${klPass ? 'within' : 'over'} the budget ${g.klBudget} (stopped by ${rl.stoppedBy} after ${rl.checks[rl.checks.length - 1]!.step} steps)`,
    },
    {
      suite: 'rl:over-optimisation',
      metric: 'overOptimisation',
      candidate: null,
      champion: null,
      bound: null,
      pass: over === undefined,
      reason: over ?? `reward and gold did not diverge for ${g.consecutive} consecutive checks (${rl.checks.length} checks)`,
    },
    ...ratings,
  ];
}

/** The line's gate decision with the RL checks added: a fail of either fails the candidate. */
export function withRlChecks(line: GateDecision, rl: RlRecord): GateDecision {
  const checks = rlChecks(rl);
  const failed = checks.filter((c) => !c.pass);
  const pass = failed.length === 0 && rl.verdict.accept;
  const rlSummary = pass
    ? `RL passed: ${checks
        .filter((c) => c.suite !== 'rl:over-optimisation')
        .map((c) => c.reason)
        .join('; ')}`
    : `RL failed: ${(failed.length ? failed.map((c) => `${c.suite}: ${c.reason}`) : rl.verdict.reasons).join('; ')}`;
  return {
    ...line,
    verdict: line.verdict === 'pass' && pass ? 'pass' : 'fail',
    suites: [...line.suites, ...checks],
    summary: `${line.summary}; ${rlSummary}`,
  };
}

/** What the cycle's state query shows of the RL update: the held-out curves, the per-step curve, KL and budget. */
export function rlState(rl: RlRecord): CycleRlState {
  return {
    checks: rl.checks,
    curve: rl.curve,
    stoppedBy: rl.stoppedBy,
    finalKl: rl.finalKl,
    klBudget: rl.guard.klBudget,
    ...(rl.reason ? { reason: rl.reason } : {}),
  };
}

/**
 * The recipe recorded with a feedback cycle's version: the line's, with every RL field it ran with, and as its
 * interventions only those the RL update applied (its RL run keeps the refused ones with the reason). A run from
 * before the update said (no `interventions`) keeps the recipe's list as it was.
 */
export function rlVersionRecipe(recipe: Recipe, rl: RlRecord): Recipe {
  const { seed: _seed, ...fields } = rl.recipe;
  if (!rl.interventions) return { ...recipe, rl: fields };
  const { interventions: _asked, ...rest } = recipe;
  const applied = rl.interventions.applied.map((a) => a.intervention);
  return { ...rest, ...(applied.length ? { interventions: applied } : {}), rl: fields };
}
