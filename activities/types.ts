/** Shapes that cross the workflow/activity boundary: ids, digests and small numbers, never data. */
import type { LineSpec, Recipe, ModelConfig } from '../schemas/io.ts';
import type { SuiteRef } from '../domain/suites.ts';
import type { evaluationActivities } from './evaluate.ts';
import type { createActivities } from './index.ts';
import type { ingestActivities } from './ingest.ts';
import type { releaseActivities } from './release.ts';
import type { trainingActivities } from './train.ts';
import type { searchRegistryActivities, trialActivities } from './search.ts';
import type { rlActivities, rlRegistryActivities } from './rl.ts';
import type { RlInterventions, RlRecipe } from '../model/rl.ts';
import type { RlCheckPoint } from '../schemas/contracts/gate.ts';

export type { SuiteRef };

/** Every activity; the workers use it. Workflows take the view of the queue a proxy sends to, below. */
export type Activities = ReturnType<typeof createActivities>;

// Views per task queue, so that a proxy can only call what the queue it sends to serves: a training activity
// called through a workflow-queue proxy does not compile (test/unit/activity-views.test.ts).
/** Registry steps and signals: short database calls on the workflow queue; the cycle runs them as local activities. */
export type RegistryActivities = ReturnType<typeof releaseActivities> & ReturnType<typeof searchRegistryActivities> & ReturnType<typeof rlRegistryActivities>;
/** Reading a drop or evidence file into the store (heartbeating), on the workflow queue. */
export type IngestActivities = ReturnType<typeof ingestActivities>;
/** What the workflow worker serves on `<queue>`. */
export type WorkflowQueueActivities = RegistryActivities & IngestActivities;
/** What the training worker serves on `<queue>.training` (CPU/GPU bound): training and evaluation. */
export type TrainingQueueActivities = ReturnType<typeof trainingActivities> &
  ReturnType<typeof evaluationActivities> &
  ReturnType<typeof trialActivities> &
  ReturnType<typeof rlActivities>;
/** What the cycle runs as local activities inside its workflow task: the registry steps only. */
export type LocalRegistryActivities = RegistryActivities;

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
  /** The new drop; null in a transfer, which trains on the replay buffer alone. */
  dropDigest: string | null;
  /** A transfer's teacher (the line's stable version): distilled into the new model, whatever its shape. */
  teacher?: VersionRef;
  replay: string[];
  recipe: Recipe;
  modelConfig: ModelConfig;
  /** Workflow id that receives progress signals (the line workflow). */
  progressTo?: string;
  /** A checkpoint of this same job to start from (a recipe search's winning trial); a heartbeat's checkpoint wins. */
  resumeFrom?: string;
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

/** What a feedback cycle's RL update did (activities/rl.ts trainRl): recorded with the version, judged by the gate. */
export interface RlRecord {
  /** Every field of the RL update (model/rl.ts RlRecipe). */
  recipe: RlRecipe;
  /** The guard policy it was judged by (domain/rl-guards.ts). */
  guard: { divergeMargin: number; goldShare: number; consecutive: number; minRewardGain: number; goldTolerance: number; klBudget: number };
  /** Held-out checks: the first is the released model's. */
  checks: RlCheckPoint[];
  /** Per step: mean sampled reward and measured KL (the last 100). */
  curve: { step: number; reward: number; kl: number }[];
  stoppedBy: 'steps' | 'kl-budget' | 'guard';
  reason?: string;
  finalKl: number;
  /** The plasticity interventions the cycle asked for: which the update applied, which it refused and why (absent: none asked). */
  interventions?: RlInterventions;
  verdict: { accept: boolean; reasons: string[] };
  rewardStats: Record<string, number | null>;
}

export interface RlOutcome {
  training: TrainingOutcome;
  rl: RlRecord;
}
