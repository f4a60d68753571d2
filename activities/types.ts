/** Shapes that cross the workflow/activity boundary: ids, digests and small numbers, never data. */
import type { LineSpec, Recipe, ModelConfig } from '../schemas/io.ts';
import type { SuiteRef } from '../domain/suites.ts';
import type { createActivities } from './index.ts';

export type { SuiteRef };

export type Activities = ReturnType<typeof createActivities>;

export interface VersionRef {
  line: string;
  version: number;
}

export interface LineSnapshot {
  spec: LineSpec;
  channels: Record<string, { version: number; epoch: number }>;
  /** The suites the line has promised, oldest first. */
  suites: SuiteRef[];
  /** Digests of accepted drops for the replay buffer, newest first. */
  replay: string[];
  /** For an application line: its foundation line's stable version now. */
  foundationStable: VersionRef | null;
  cycleCount: number;
  scheduled: boolean;
}

export type IngestResult =
  | { status: 'accepted'; digest: string; counts: { train: number; heldOut: number; probes: number }; suites: SuiteRef[] }
  | { status: 'duplicate'; digest: string; previousStatus: string };

export interface TrainInput {
  line: string;
  key: string;
  /** Weights to start from: the champion, or the foundation's stable version, or null for a fresh init. */
  init: VersionRef | null;
  dropDigest: string;
  replay: string[];
  recipe: Recipe;
  modelConfig: ModelConfig;
  /** Workflow id that receives progress signals (the line workflow). */
  progressTo?: string;
}

export interface TrainingOutcome {
  weightsDigest: string;
  steps: number;
  tokens: number;
  flops: number;
  wallMs: number;
  backend: string;
  finalLoss: number;
  /** Step the run resumed from after a retry (0 when it ran through). */
  resumedFromStep: number;
  lossCurve: number[];
}
