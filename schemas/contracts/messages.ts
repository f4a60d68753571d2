/** Signals, queries and updates of the line and cycle workflows, and the shapes they carry. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DropRequest } from '../io.ts';
import type { GateDecision, RlCheckPoint } from './gate.ts';

export type CyclePhase = 'queued' | 'ingest' | 'adapt' | 'evaluate' | 'gate' | 'canary' | 'awaiting-approval' | 'promote' | 'rollback' | 'done';

export type CycleVerdict = 'promoted' | 'rejected' | 'quarantined' | 'duplicate' | 'rolled-back' | 'rejected-by-reviewer' | 'approval-expired' | 'conflict';

export interface TrainingProgress {
  cycleId: string;
  step: number;
  steps: number;
  loss: number;
  tokensPerSecond?: number;
}

export interface CurrentCycle {
  cycleId: string;
  digest: string;
  source: string;
  phase: CyclePhase;
  version?: number;
  step?: number;
  steps?: number;
  loss?: number;
  startedAt: string;
  /** The last phase report taken (reports can arrive out of order). */
  phaseSeq?: number;
}

export interface CycleSummary {
  cycleId: string;
  digest: string;
  source: string;
  verdict: CycleVerdict;
  version?: number;
  reason: string;
  finishedAt: string;
}

/** What the line workflow carries across continue-as-new, and what its `state` query returns. */
export interface LineState {
  line: string;
  queue: DropRequest[];
  /** Digests seen by this line workflow (queued, running or done), newest last; bounded. */
  seen: string[];
  cyclesStarted: number;
  current: CurrentCycle | null;
  /** Channel -> version, as last reported by a cycle or a rollback. */
  channels: Record<string, number>;
  recent: CycleSummary[];
  /** Drops wait for a schedule tick instead of starting a cycle at once. */
  scheduled: boolean;
  /** Queued drops a schedule tick has released to run (scheduled lines only). */
  released: number;
  reevaluations: number;
  duplicatesIgnored: number;
  /**
   * Signals refused because they were not drop requests at all (no string digest and path): they carry no
   * data to quarantine, so the line counts them, logs them and goes on serving. Optional for older histories.
   */
  malformedSignals?: number;
  /** The last move of this foundation line's `stable`: the upgrade of its dependents it started, or why none started. */
  lastUpgrade?: UpgradeStart;
  /** The audit seal after this line's last cycle failed (cleared by the next that succeeds). Optional for older histories. */
  sealFailure?: SealFailureState;
}

/** A failed audit seal as the line workflow saw it: after which cycle, when, and the activity's reason. */
export interface SealFailureState {
  cycleId: string;
  at: string;
  reason: string;
}

export interface RollbackRequest {
  to: number;
  reason: string;
  actor: string;
  channel?: string;
  /** Roll back to a version whose gate failed or never ran; recorded as an override (actor, reason). */
  override?: boolean;
}

export interface ChannelMove {
  line: string;
  channel: string;
  from: number | null;
  /** Null when the move cleared the channel (a first candidate leaving canary). */
  to: number | null;
  epoch: number;
  releaseId: number;
  /** A move of a foundation's `stable` by a rollback or an override: the upgrade it started, or why none started. */
  upgrade?: UpgradeStart;
}

export interface RegressionReport {
  reason: string;
  actor: string;
  /** Absolute path of a drop file (text or probes) that shows the regression; evaluated on canary and stable. */
  evidence?: string;
  evidenceDigest?: string;
}

export interface RegressionAck {
  cycleId: string;
  version: number;
}

export interface ReviewRequest {
  version: number;
  actor: string;
  reason?: string;
}

export interface OverrideRequest {
  version: number;
  actor: string;
  reason: string;
}

export interface TickRequest {
  kind: 'cycle' | 'reevaluate';
  scheduleId?: string;
}

export interface CycleInput {
  line: string;
  /** The drop to train on; absent only in a transfer. */
  drop?: DropRequest;
  /** The line workflow's id, for phase and progress reports. */
  parentId: string;
  /**
   * A foundation upgrade's transfer instead of a drop : train from `foundation`
   * with the line's stable version as teacher, on the line's replay buffer, and pass the inheritance gate
   * besides the line's own. `drop` is then absent.
   */
  transfer?: TransferRequest;
}

/** What a transfer cycle starts from. */
export interface TransferRequest {
  /** The new foundation version: the base the new application model starts from. */
  foundation: { line: string; version: number };
  /** Bound on the negative flip rate over probe suites (default 0.02). */
  maxNegativeFlipRate?: number;
}

/** Input of upgradeWorkflow (`upgrade:<foundation>@<v>`); continue-as-new carries `done` and `pending`. */
export interface UpgradeInput {
  foundation: string;
  version: number;
  /** Lines to upgrade (manual: the one named); absent: every dependent line with policy `auto`. */
  lines?: string[];
  /** Children running at once (default 4, at most MAX_UPGRADE_CONCURRENCY): training is bounded by the training queue's workers anyway. */
  concurrency?: number;
  /** Lines per run before continue-as-new (default 50, at most MAX_UPGRADE_LINES_PER_RUN), so a fan-out over hundreds of lines keeps a short history. */
  linesPerRun?: number;
  maxNegativeFlipRate?: number;
  /** Carried across continue-as-new. */
  pending?: string[];
  done?: UpgradeLineOutcome[];
}

/**
 * At most this many transfers run at once: each running child sends its phase and progress reports into the
 * upgrade's history, and its training waits for a training worker (one training at a time each), so children past
 * the training pool only queue while they fill that history; 32 covers a pool of 32 training processes.
 */
export const MAX_UPGRADE_CONCURRENCY = 32;
/**
 * At most this many lines per run before continue-as-new: each line adds its child's start and result, its seal and
 * the reports it sends to the run's history, which Temporal warns about at 10,240 events and stops at 51,200.
 */
export const MAX_UPGRADE_LINES_PER_RUN = 200;

/** Why an upgrade's fan-out settings cannot run, or null when they can: whole numbers within the bounds above. */
export function upgradeInputProblem(input: Pick<UpgradeInput, 'concurrency' | 'linesPerRun'>): string | null {
  const bounded = (name: string, value: unknown, max: number, why: string) =>
    value === undefined || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max)
      ? null
      : `${name} takes a whole number from 1 to ${max} (${why}), got ${JSON.stringify(value) ?? String(value)}`;
  return (
    bounded('concurrency', input.concurrency, MAX_UPGRADE_CONCURRENCY, 'transfers running at once; more only queue behind the training workers') ??
    bounded('linesPerRun', input.linesPerRun, MAX_UPGRADE_LINES_PER_RUN, "lines per run, which bounds the upgrade's history")
  );
}

/** A line and why it is left out of an upgrade. */
export interface UpgradeLineNote {
  line: string;
  reason: string;
}

/** The lines an upgrade reaches (the upgradePlan activity); the notes are absent in histories recorded before them. */
export interface UpgradePlan {
  lines: string[];
  /** `auto` lines that need no transfer (no stable version, already on this foundation version or a later one), and lines of another policy. */
  skipped?: UpgradeLineNote[];
  /** `auto` lines whose model cannot teach one of the foundation's shape: refused before any transfer starts. */
  refused?: UpgradeLineNote[];
}

/** What a move of a foundation's `stable` did about its dependents: the upgrade it started, or why none started. */
export interface UpgradeStart {
  foundation: string;
  version: number;
  /** The upgrade workflow started (or already running under this id); absent when none started. */
  workflowId?: string;
  /** The lines it transfers. */
  lines: string[];
  refused: UpgradeLineNote[];
  skipped: UpgradeLineNote[];
  /** Why no upgrade started, when none did. */
  reason?: string;
}

export interface UpgradeLineOutcome {
  line: string;
  /** The transfer cycle; absent when the plan refused the line before any cycle started. */
  cycleId?: string;
  /** The cycle's verdict, `failed` when the child failed (the line stays on its old version), `refused` when no cycle started. */
  verdict: CycleVerdict | 'failed' | 'refused';
  version?: number;
  reason: string;
}

export interface UpgradeState {
  upgradeId: string;
  foundation: string;
  version: number;
  pending: string[];
  running: string[];
  done: UpgradeLineOutcome[];
  /** Why the last seal of the audit log after a transfer failed; absent when it succeeded (`perennial audit verify` says more). */
  sealFailed?: string;
}

export type UpgradeResult = Omit<UpgradeState, 'running' | 'pending'>;

export interface CycleResult {
  cycleId: string;
  verdict: CycleVerdict;
  version?: number;
  reason: string;
  decision?: GateDecision;
  channels: Record<string, number>;
  /** The cycle ended without a judgment and its drop is `failed`: the line takes the same content again. */
  dropFailed?: boolean;
}

export interface CycleState {
  cycleId: string;
  line: string;
  phase: CyclePhase;
  version?: number;
  champion?: number;
  decision?: GateDecision;
  /** The candidate's plasticity ratio against a fresh model, when the line measures it. */
  plasticity?: number;
  /** A feedback cycle's RL update: its curves (issue 16). */
  rl?: CycleRlState;
  awaitingApproval: boolean;
}

/** The RL curves of a feedback cycle: held-out checks (reward, gold, KL; the first is the released model's) and per step. */
export interface CycleRlState {
  checks: RlCheckPoint[];
  curve: { step: number; reward: number; kl: number }[];
  stoppedBy: string;
  reason?: string;
  finalKl: number;
  klBudget: number;
}

// The line workflow (`line:<name>`).
export const dataDropSignal = defineSignal<[DropRequest]>('dataDrop');
export const tickSignal = defineSignal<[TickRequest]>('tick');
export const progressSignal = defineSignal<[TrainingProgress]>('trainingProgress');
export const triggerSignal = defineSignal<[{ scheduled: boolean }]>('trigger');
/** `seq` orders the reports: signals sent in one workflow task may arrive in any order. */
export const phaseSignal = defineSignal<[{ cycleId: string; phase: CyclePhase; version?: number; seq: number }]>('cyclePhase');
export const stateQuery = defineQuery<LineState>('state');
export const rollbackUpdate = defineUpdate<ChannelMove, [RollbackRequest]>('rollback');
export const reportRegressionUpdate = defineUpdate<RegressionAck, [RegressionReport]>('reportRegression');
export const overrideUpdate = defineUpdate<ChannelMove, [OverrideRequest]>('overrideGate');

// The cycle workflow (`cycle:<line>:<n>`).
export const approveUpdate = defineUpdate<{ version: number; approved: true }, [ReviewRequest]>('approve');
export const rejectUpdate = defineUpdate<{ version: number; approved: false }, [ReviewRequest]>('reject');
export const regressionSignal = defineSignal<[RegressionReport]>('regression');
export const cycleStateQuery = defineQuery<CycleState>('cycleState');
export const upgradeStateQuery = defineQuery<UpgradeState>('upgradeState');
