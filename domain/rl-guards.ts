/**
 * The guards of an RL cycle, pure: over-optimisation (the training reward rises on held-out prompts
 * while the gold check does not follow, two checks in a row; Gao et al. 2023) and the release verdict
 * (held-out reward must rise, gold must not fall, KL within budget). Held-out ratings are a second gold:
 * when the feedback had some, the policy's agreement with them (model/rl.ts RlCheck) must not fall by more
 * than the gold tolerance, and its falling while the reward rises is divergence like gold's.
 */
import type { RlCheckPoint } from '../schemas/contracts/gate.ts';

/** One held-out check of a policy (the first is the released model's). */
export type RewardCheck = RlCheckPoint;

export interface RlGuardPolicy {
  /** Reward gain over the baseline from which a check can count as diverging. */
  divergeMargin: number;
  /** A check diverges when gold gained less than this share of the reward's gain (or fell). */
  goldShare: number;
  /** Diverging checks in a row that stop the cycle. */
  consecutive: number;
  /** Held-out reward must rise by at least this much for a release. */
  minRewardGain: number;
  /** Gold may fall at most this much. */
  goldTolerance: number;
  klBudget: number;
}

export const RL_GUARD_DEFAULTS: Omit<RlGuardPolicy, 'klBudget'> = {
  divergeMargin: 0.1,
  goldShare: 0.25,
  consecutive: 2,
  minRewardGain: 0.0001,
  goldTolerance: 0.05,
};

/** Whether `check` diverges from the baseline: reward clearly up, gold left behind or down. */
export function diverges(check: RewardCheck, baseline: RewardCheck, policy: RlGuardPolicy): boolean {
  const gain = check.reward - baseline.reward;
  if (gain < policy.divergeMargin) return false;
  const goldGain = check.gold - baseline.gold;
  return goldGain < 0 || goldGain < policy.goldShare * gain || ratingsFell(check, baseline, policy);
}

/** Whether the agreement with the held-out ratings fell past the gold tolerance (false without ratings). */
export function ratingsFell(check: RewardCheck, baseline: RewardCheck, policy: RlGuardPolicy): boolean {
  return check.ratings !== undefined && baseline.ratings !== undefined && check.ratings < baseline.ratings - policy.goldTolerance;
}

/** The over-optimisation reason when the last `consecutive` checks all diverge, else undefined. */
export function overOptimisation(checks: RewardCheck[], policy: RlGuardPolicy): string | undefined {
  if (checks.length < 1 + policy.consecutive) return undefined;
  const base = checks[0]!;
  const recent = checks.slice(-policy.consecutive);
  if (!recent.every((c) => diverges(c, base, policy))) return undefined;
  const last = recent[recent.length - 1]!;
  const ratings = last.ratings !== undefined && base.ratings !== undefined ? ` and rating agreement ${base.ratings.toFixed(3)} -> ${last.ratings.toFixed(3)}` : '';
  return (
    `over-optimisation: held-out reward ${base.reward.toFixed(3)} -> ${last.reward.toFixed(3)} while gold ` +
    `${base.gold.toFixed(3)} -> ${last.gold.toFixed(3)}${ratings} for ${policy.consecutive} consecutive checks (steps ${recent.map((c) => c.step).join(', ')})`
  );
}

export interface RlVerdict {
  accept: boolean;
  reasons: string[];
}

/** The RL part of the gate: every failed condition is a reason; accept when there are none. */
export function rlVerdict(checks: RewardCheck[], policy: RlGuardPolicy, stopReason?: string): RlVerdict {
  const reasons: string[] = [];
  const base = checks[0]!;
  const last = checks[checks.length - 1]!;
  const over = stopReason?.startsWith('over-optimisation') ? stopReason : overOptimisation(checks, policy);
  if (over) reasons.push(over);
  if (last.reward - base.reward < policy.minRewardGain) reasons.push(`held-out reward did not rise (${base.reward.toFixed(3)} -> ${last.reward.toFixed(3)})`);
  if (last.gold < base.gold - policy.goldTolerance) reasons.push(`gold reward fell (${base.gold.toFixed(3)} -> ${last.gold.toFixed(3)})`);
  if (ratingsFell(last, base, policy)) reasons.push(`agreement with the held-out ratings fell (${base.ratings!.toFixed(3)} -> ${last.ratings!.toFixed(3)})`);
  if (!(last.kl <= policy.klBudget)) reasons.push(`KL to the released version ${last.kl.toFixed(4)} is over the budget ${policy.klBudget}`);
  return { accept: reasons.length === 0, reasons };
}
