/** The registry's entity types: what its reads return and what it is built from. */
import type postgres from 'postgres';
import type { ArtifactStore } from './artifacts.ts';
import type { Database } from './db.ts';
import type { ManifestFile } from './manifest.ts';
import type { RlRunInfo } from './rl-runs.ts';
import type { Keys, Verifier } from './signing.ts';

export type Json = Record<string, unknown>;

/** What the registry is built from. */
export interface RegistryDeps {
  db: Database;
  store: ArtifactStore;
  keys: Keys;
  /** Folder (outside the database) of the signed audit roots, `roots.jsonl`. */
  auditDir: string;
  /** Public keys trusted besides the installation's own (e.g. keys from before a rotation). */
  trustedKeys?: Verifier[];
  /** The raw client behind `db`, for callers that hold one; the registry itself needs only `db`. */
  sql?: postgres.Sql;
}

/** A model line. */
export interface LineInfo {
  name: string;
  kind: 'foundation' | 'application';
  foundationLine: string | null;
  modelConfig: Json;
  recipe: Json;
  gateRules: Json;
  promotion: Json;
  /** The limits set on the line (schemas/io.ts StoredLineLimits); those not set default from its recipe (domain/recipe-limits.ts). */
  limits: Json;
  scheduled: boolean;
  /** For an application line: what a new stable foundation version does to it. */
  upgradePolicy: 'auto' | 'manual' | 'off';
  /** Highest version number allocated, null before the first. */
  latestVersion: number | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A data drop. */
export interface DropInfo {
  line: string;
  digest: string;
  source: string;
  status: 'accepted' | 'quarantined' | 'rejected' | 'failed';
  counts: { records: number; train: number; heldOut: number; probes: number; rejected: number };
  reason: string | null;
  storedPath: string;
  ingestKey: string | null;
  receivedAt: Date;
}

/** An evaluation suite. */
export interface SuiteInfo {
  line: string;
  name: string;
  kind: string;
  dataDigest: string;
  dropDigest: string | null;
  createdAt: Date;
}

/** A training run. */
export interface TrainingRunInfo {
  line: string;
  key: string;
  parentVersion: number | null;
  recipe: Json;
  seed: number;
  status: 'running' | 'completed' | 'failed';
  steps: number;
  tokens: number;
  flops: number;
  wallMs: number;
  backend: string | null;
  finalLoss: number | null;
  artifactDigest: string | null;
  /** The checkpoints it wrote (and the one it resumed from, marked `resumed`), as recorded when it finished. */
  checkpoints: { digest: string; step: number; resumed?: true }[];
  error: string | null;
  /** The version this run produced, once created. */
  version: number | null;
  drops: string[];
  startedAt: Date;
  finishedAt: Date | null;
}

/** A version without its file and drop lists. */
export interface VersionSummary {
  line: string;
  version: number;
  parentVersion: number | null;
  foundationVersion: { line: string; version: number } | null;
  /** The weights file (safetensors) in the artifact store. */
  weightsDigest: string;
  manifestDigest: string;
  manifestKeyId: string;
  recipe: Json;
  codeRevision: string;
  seed: number;
  backend: string;
  compute: { tokens: number; flops: number; wallMs: number; steps: number };
  createdAt: Date;
}

/** A version with the files its manifest lists and the drops it was trained on. */
export interface VersionInfo extends VersionSummary {
  files: ManifestFile[];
  drops: string[];
  trainingRun: string | null;
}

/** A channel and where it points. */
export interface ChannelInfo {
  channel: string;
  version: number | null;
  epoch: number;
  updatedAt: Date;
}

/** One channel move. */
export interface ReleaseInfo {
  id: number;
  line: string;
  channel: string;
  fromVersion: number | null;
  /** Null when the move cleared the channel. */
  toVersion: number | null;
  epoch: number;
  actor: string;
  reason: string;
  gateDecisionId: number | null;
  requestKey: string;
  at: Date;
}

/** An application and the version it resolves to now. */
export interface ApplicationInfo {
  app: string;
  line: string;
  channel: string;
  policy: 'follow' | 'hold';
  pinnedVersion: number | null;
  /** `follow`: the channel's version; `hold`: the pinned one. Null when the channel is still empty. */
  resolvedVersion: number | null;
  updatedAt: Date;
}

/** An evaluation result. */
export interface EvaluationInfo {
  line: string;
  version: number;
  suite: string;
  /** The line that owns the suite. */
  suiteLine: string;
  kind: string;
  metrics: Json;
  dataDigest: string | null;
  backend: string | null;
  /** The weights measured (the version's), and the code revision that measured them. */
  weightsDigest: string | null;
  codeRevision: string | null;
  evaluatedAt: Date;
}

/** A gate decision. */
export interface GateDecisionInfo {
  id: number;
  line: string;
  key: string;
  candidate: number;
  champion: number | null;
  verdict: 'pass' | 'fail';
  suites: unknown[];
  summary: string | null;
  actor: string;
  override: { actor: string; reason: string; at: Date } | null;
  createdAt: Date;
}

/** One thing wrong with a version's stored artifacts or signature. */
export interface ArtifactProblem {
  line: string;
  version: number;
  /** `manifest`, or `<role> <digest>` of the file at fault. */
  file: string;
  reason: string;
  path?: string;
}

/** The result of verifying stored versions. */
export interface ArtifactVerification {
  ok: boolean;
  /** Versions checked. */
  checked: number;
  /** Distinct files re-hashed. */
  files: number;
  problems: ArtifactProblem[];
}

/** Where a version came from and where it went. */
export interface Lineage {
  version: VersionInfo;
  kind: 'foundation' | 'application';
  trainingRun: TrainingRunInfo | null;
  /** Drops this version was trained on. */
  drops: DropInfo[];
  /** Parent versions, nearest first, each with the drops it was trained on. */
  parents: { version: VersionSummary; drops: DropInfo[] }[];
  /** True when the parent chain is longer than the depth asked for. */
  parentsTruncated: boolean;
  /** Every drop in this version's ancestry (its own and its parents'), oldest first. */
  allDrops: string[];
  foundation: VersionSummary | null;
  /** The version's plasticity record (migration 0004), when its cycle measured one. */
  plasticity?: Record<string, unknown>;
  /** The version's RL run (migration 0007), when a feedback cycle trained it: its recipe says what it did with the plasticity interventions asked for. */
  rl?: Omit<RlRunInfo, 'line' | 'version'>;
  /** Moves of any channel of the line to or from this version, oldest first. */
  releases: ReleaseInfo[];
  /** Applications that run this version now (`direct`), or an application version built on it (`foundation`). */
  applications: (ApplicationInfo & { via: 'direct' | 'foundation'; runs: { line: string; version: number } })[];
}

/** A version's plasticity record as stored (migration 0004); `record` is model/plasticity.ts's PlasticityRecord. */
export interface PlasticityInfo {
  line: string;
  version: number;
  record: Record<string, unknown>;
  backend: string | null;
  measuredAt: Date;
}
