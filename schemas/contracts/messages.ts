/** Signals, queries and updates of the line and cycle workflows, and the shapes they carry. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DropRequest } from '../io.ts';
import type { GateDecision } from './gate.ts';

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
  drop: DropRequest;
  /** The line workflow's id, for phase and progress reports. */
  parentId: string;
}

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
  awaitingApproval: boolean;
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
