/** What the release gate reads and returns (workflows/gate.ts decides): carried in results, messages and the registry. */
import type { GateRules } from '../io.ts';

export type SuiteKind = 'text' | 'probe';
export type MetricName = 'loss' | 'exactMatch';
/** The RL checks of a feedback cycle's gate (workflows/rl-cycle.ts): held-out reward, gold, KL, over-optimisation. */
export type RlMetricName = 'reward' | 'gold' | 'kl' | 'overOptimisation' | 'ratingAgreement';

/**
 * One held-out check of an RL update (the first is the released model's): greedy answers' mean reward and gold
 * reward, mean per-token KL to the released model, and the agreement with held-out ratings when there are any
 * (0.5 at the released model; model/rl.ts ratingAgreement).
 */
export interface RlCheckPoint {
  step: number;
  reward: number;
  gold: number;
  kl: number;
  ratings?: number;
}

export interface Metrics {
  /** 1 when nothing is left to measure: a later drop superseded every probe of the suite. */
  retired?: number;
  loss?: number;
  perplexity?: number;
  exactMatch?: number;
  [name: string]: number | undefined;
}

export interface GateSuite {
  name: string;
  kind: SuiteKind;
  /** True for the suites that came with the drop this candidate was trained on. */
  isNew: boolean;
}

export interface GateInput {
  rules: GateRules;
  suites: GateSuite[];
  candidate: Record<string, Metrics>;
  /**
   * The version judged against: the champion, or for a line's first version what it replaces (an untrained
   * model, the foundation's stable version). Null: floors only (a regression check with nothing to compare).
   */
  champion: Record<string, Metrics> | null;
  /** How to name `champion` in the summary when it is not the line's champion. */
  baseline?: string;
  /** The candidate's measured plasticity (absent: not measured), judged by rules.minPlasticity. */
  plasticity?: { ratio: number };
}

/** The verdict of the plasticity rule, present when rules.minPlasticity is set. */
export interface PlasticityVerdict {
  ratio: number | null;
  bound: number;
  pass: boolean;
  reason: string;
}

export interface SuiteVerdict {
  suite: string;
  metric: MetricName | RlMetricName;
  candidate: number | null;
  champion: number | null;
  /** The bound the candidate had to meet, when one applied. */
  bound: number | null;
  pass: boolean;
  reason: string;
}

export interface GateDecision {
  verdict: 'pass' | 'fail';
  suites: SuiteVerdict[];
  /** One line: the failing suites, or why it passed. */
  summary: string;
  plasticity?: PlasticityVerdict;
}
