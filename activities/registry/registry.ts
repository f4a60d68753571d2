/**
 * The version registry: every registry write the release loop makes goes through this class. Each write is
 * one transaction that also appends its audit entry, so a change and its record commit together or not at
 * all; races (version numbers, channel moves, retried activities) are settled by the database.
 */
import { and, asc, desc, eq, gt, inArray, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import {
  DEFAULT_CHANNELS,
  applications,
  auditLog,
  channels,
  dataDrops,
  evaluationSuites,
  evaluations,
  gateDecisions,
  lines,
  releases,
  trainingRunDrops,
  trainingRuns,
  versionDrops,
  versionFiles,
  versions,
} from '../../schemas/db/index.ts';
import {
  ArtifactIntegrityError,
  ChannelConflictError,
  GateRefusedError,
  InvalidInputError,
  NotFoundError,
  RegistryConflictError,
} from '../../schemas/contracts/errors.ts';
import type { ArtifactStore, ObjectCheck } from './artifacts.ts';
import {
  appendAuditEntry,
  exportAuditRoot,
  sealAuditRoot,
  verifyAuditLog,
  type AuditEntry,
  type AuditInput,
  type AuditVerification,
  type ExportedRoot,
  type Tx,
} from './audit.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';
import type postgres from 'postgres';
import { prepared, queryPrepared, type Database } from './db.ts';
import {
  BindApplicationInput,
  Count,
  CreateVersionInput,
  EnsureLineInput,
  EnsureSuiteInput,
  FinishTrainingRunInput,
  MoveChannelInput,
  Name,
  OverrideGateInput,
  RecordDropInput,
  RecordEvaluationInput,
  RecordEventInput,
  RecordGateDecisionInput,
  SetDropStatusInput,
  StartTrainingRunInput,
  UpdateLineInput,
  VersionNumber,
  parseInput,
} from './inputs.ts';
import { openManifest, signManifest, sortFiles, type Manifest, type ManifestFile } from './manifest.ts';
import type { Keys, Verifier } from './signing.ts';

type Json = Record<string, unknown>;
type Exec = Database | Tx;

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
  scheduled: boolean;
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
  /** Moves of any channel of the line to or from this version, oldest first. */
  releases: ReleaseInfo[];
  /** Applications that run this version now (`direct`), or an application version built on it (`foundation`). */
  applications: (ApplicationInfo & { via: 'direct' | 'foundation'; runs: { line: string; version: number } })[];
}

const DEFAULT_ACTOR = 'perennial';

/** The SQLSTATE and constraint of a PostgreSQL error, looking through Drizzle's wrapper. */
function pgError(err: unknown): { code?: string; constraint?: string } {
  for (let e = err as { code?: unknown; constraint_name?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code))
      return { code: e.code, constraint: typeof e.constraint_name === 'string' ? e.constraint_name : undefined };
  }
  return {};
}

/** The registry of lines, versions, channels and their history. */
export class Registry {
  readonly db: Database;
  readonly store: ArtifactStore;
  readonly keys: Keys;
  readonly auditDir: string;
  readonly trusted: readonly Verifier[];

  constructor(deps: RegistryDeps) {
    this.db = deps.db;
    this.store = deps.store;
    this.keys = deps.keys;
    this.auditDir = deps.auditDir;
    this.trusted = [deps.keys, ...(deps.trustedKeys ?? [])];
  }

  // ---- lines -------------------------------------------------------------------------------------------

  /** Creates a line (with its `candidate`, `canary` and `stable` channels) or returns it; audited on creation. Idempotent. */
  async ensureLine(input: {
    name: string;
    kind: 'foundation' | 'application';
    foundationLine?: string;
    modelConfig: Json;
    recipe: Json;
    gateRules: Json;
    promotion?: Json;
    scheduled?: boolean;
    actor: string;
  }): Promise<LineInfo> {
    const p = parseInput('ensureLine', EnsureLineInput, input);
    return this.db.transaction(async (tx) => {
      let foundationLineId: number | null = null;
      if (p.foundationLine !== undefined) {
        const foundation = await lineRow(tx, p.foundationLine);
        if (foundation.kind !== 'foundation')
          throw new InvalidInputError(`line ${p.foundationLine} is an application line; an application line builds on a foundation line`);
        foundationLineId = foundation.id;
      }
      const [created] = await tx
        .insert(lines)
        .values({
          name: p.name,
          kind: p.kind,
          foundationLineId,
          modelConfig: p.modelConfig,
          defaultRecipe: p.recipe,
          gateRules: p.gateRules,
          promotion: p.promotion ?? {},
          scheduled: p.scheduled ?? false,
        })
        .onConflictDoNothing({ target: lines.name })
        .returning();
      if (!created) {
        const existing = await lineRow(tx, p.name);
        if (existing.kind !== p.kind || existing.foundationLineId !== foundationLineId) {
          throw new RegistryConflictError(
            `line ${p.name} already exists as a ${existing.kind} line${existing.foundationLineId === null ? '' : ' on another foundation line'}; it cannot be redefined`,
          );
        }
        return this.#lineInfo(tx, existing);
      }
      await tx.insert(channels).values(DEFAULT_CHANNELS.map((name) => ({ lineId: created.id, name })));
      await appendAuditEntry(tx, {
        actor: p.actor,
        action: 'line.create',
        subject: p.name,
        details: {
          kind: p.kind,
          foundationLine: p.foundationLine ?? null,
          modelConfig: p.modelConfig,
          recipe: p.recipe,
          gateRules: p.gateRules,
          promotion: p.promotion ?? {},
          scheduled: p.scheduled ?? false,
        },
      });
      return this.#lineInfo(tx, created);
    });
  }

  /** Replaces a line's model config, default recipe, gate rules, promotion policy or scheduling (they are data); audited with the reason. */
  async updateLine(input: {
    name: string;
    modelConfig?: Json;
    recipe?: Json;
    gateRules?: Json;
    promotion?: Json;
    scheduled?: boolean;
    actor: string;
    reason: string;
  }): Promise<LineInfo> {
    const p = parseInput('updateLine', UpdateLineInput, input);
    return this.db.transaction(async (tx) => {
      const before = await lineRow(tx, p.name, true);
      const [after] = await tx
        .update(lines)
        .set({
          ...(p.modelConfig ? { modelConfig: p.modelConfig } : {}),
          ...(p.recipe ? { defaultRecipe: p.recipe } : {}),
          ...(p.gateRules ? { gateRules: p.gateRules } : {}),
          ...(p.promotion ? { promotion: p.promotion } : {}),
          ...(p.scheduled !== undefined ? { scheduled: p.scheduled } : {}),
          updatedAt: new Date(),
        })
        .where(eq(lines.id, before.id))
        .returning();
      await appendAuditEntry(tx, {
        actor: p.actor,
        action: 'line.update',
        subject: p.name,
        details: {
          reason: p.reason,
          ...(p.modelConfig ? { modelConfig: { from: before.modelConfig, to: p.modelConfig } } : {}),
          ...(p.recipe ? { recipe: { from: before.defaultRecipe, to: p.recipe } } : {}),
          ...(p.gateRules ? { gateRules: { from: before.gateRules, to: p.gateRules } } : {}),
          ...(p.promotion ? { promotion: { from: before.promotion, to: p.promotion } } : {}),
          ...(p.scheduled !== undefined ? { scheduled: { from: before.scheduled, to: p.scheduled } } : {}),
        },
      });
      return this.#lineInfo(tx, after!);
    });
  }

  /** The line named `name`; throws NotFoundError when there is none. */
  async getLine(name: string): Promise<LineInfo> {
    return this.#lineInfo(this.db, await lineRow(this.db, name));
  }

  /** Every line, by name. */
  async listLines(): Promise<LineInfo[]> {
    const rows = await this.db.select().from(lines).orderBy(asc(lines.name));
    const byId = new Map(rows.map((r) => [r.id, r.name]));
    return rows.map((r) => toLineInfo(r, r.foundationLineId === null ? null : (byId.get(r.foundationLineId) ?? null)));
  }

  async #lineInfo(exec: Exec, row: typeof lines.$inferSelect): Promise<LineInfo> {
    let foundation: string | null = null;
    if (row.foundationLineId !== null) {
      const [f] = await exec.select({ name: lines.name }).from(lines).where(eq(lines.id, row.foundationLineId));
      foundation = f?.name ?? null;
    }
    return toLineInfo(row, foundation);
  }

  // ---- data drops and suites ---------------------------------------------------------------------------

  /** Records a received drop (any status); idempotent by (line, digest). Audited on first record. */
  async recordDrop(input: {
    line: string;
    digest: string;
    source: string;
    status: 'accepted' | 'quarantined' | 'rejected';
    counts: { records: number; train: number; heldOut: number; probes?: number; rejected?: number };
    reason?: string;
    storedPath: string;
    ingestKey?: string;
    actor?: string;
  }): Promise<{ drop: DropInfo; existed: boolean }> {
    const p = parseInput('recordDrop', RecordDropInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      const [created] = await tx
        .insert(dataDrops)
        .values({
          lineId: line.id,
          digest: p.digest,
          source: p.source,
          status: p.status,
          records: p.counts.records,
          trainRecords: p.counts.train,
          heldOutRecords: p.counts.heldOut,
          rejectedRecords: p.counts.rejected ?? 0,
          probeRecords: p.counts.probes ?? 0,
          reason: p.reason ?? null,
          storedPath: p.storedPath,
          ingestKey: p.ingestKey ?? null,
          acceptedSeq: p.status === 'accepted' ? NEXT_ACCEPTED : null,
        })
        .onConflictDoNothing({ target: [dataDrops.lineId, dataDrops.digest] })
        .returning();
      if (!created) {
        const [existing] = await tx
          .select()
          .from(dataDrops)
          .where(and(eq(dataDrops.lineId, line.id), eq(dataDrops.digest, p.digest)));
        return { drop: toDropInfo(existing!, line.name), existed: true };
      }
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'drop.record',
        subject: `${p.line}/drop/${p.digest}`,
        details: {
          source: p.source,
          status: p.status,
          counts: { ...p.counts, probes: p.counts.probes ?? 0, rejected: p.counts.rejected ?? 0 },
          reason: p.reason ?? null,
          storedPath: p.storedPath,
          ingestKey: p.ingestKey ?? null,
        },
      });
      return { drop: toDropInfo(created, line.name), existed: false };
    });
  }

  /**
   * Changes a drop's status (a reviewer rejects it, or a quarantined drop is released), with the reason;
   * audited with the status before and after. Idempotent: setting the status it already has changes nothing.
   */
  async setDropStatus(
    line: string,
    digest: string,
    status: 'accepted' | 'quarantined' | 'rejected' | 'failed',
    reason: string,
    actor: string = DEFAULT_ACTOR,
  ): Promise<DropInfo> {
    const p = parseInput('setDropStatus', SetDropStatusInput, { line, digest, status, reason, actor });
    return this.db.transaction(async (tx) => {
      const l = await lineRow(tx, p.line);
      const [row] = await tx
        .select()
        .from(dataDrops)
        .where(and(eq(dataDrops.lineId, l.id), eq(dataDrops.digest, p.digest)))
        .for('update');
      if (!row) throw new NotFoundError(`drop ${p.digest} of line ${p.line}`);
      if (row.status === p.status) return toDropInfo(row, p.line);
      const [updated] = await tx.update(dataDrops).set({ status: p.status, reason: p.reason }).where(eq(dataDrops.id, row.id)).returning();
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'drop.status',
        subject: `${p.line}/drop/${p.digest}`,
        details: { from: row.status, to: p.status, reason: p.reason, previousReason: row.reason },
      });
      return toDropInfo(updated!, p.line);
    });
  }

  /**
   * Marks a drop `failed` (its cycle ended without a judgment), but only while it is still `accepted` by the
   * ingest of `ingestKey`: a drop some other cycle ingested, or one a gate already rejected, keeps its status.
   * Returns the drop when it changed, else null. Idempotent; audited.
   */
  async failDrop(line: string, digest: string, ingestKey: string, reason: string, actor: string = DEFAULT_ACTOR): Promise<DropInfo | null> {
    const p = parseInput('failDrop', SetDropStatusInput, { line, digest, status: 'failed', reason, actor });
    return this.db.transaction(async (tx) => {
      const l = await lineRow(tx, p.line);
      const [row] = await tx
        .select()
        .from(dataDrops)
        .where(and(eq(dataDrops.lineId, l.id), eq(dataDrops.digest, p.digest)))
        .for('update');
      if (!row || row.status !== 'accepted' || row.ingestKey !== ingestKey) return null;
      const [updated] = await tx.update(dataDrops).set({ status: 'failed', reason: p.reason }).where(eq(dataDrops.id, row.id)).returning();
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'drop.status',
        subject: `${p.line}/drop/${p.digest}`,
        details: { from: row.status, to: 'failed', reason: p.reason, previousReason: row.reason, ingestKey },
      });
      return toDropInfo(updated!, p.line);
    });
  }

  /**
   * Accepts a `failed` drop again for the ingest of `ingestKey` (it was sent again, perhaps with another recipe).
   * Returns the drop as it is after the call (unchanged when it was not `failed`). Idempotent; audited.
   */
  async reacceptDrop(line: string, digest: string, ingestKey: string, actor: string = DEFAULT_ACTOR): Promise<DropInfo> {
    return this.db.transaction(async (tx) => {
      const l = await lineRow(tx, line);
      const [row] = await tx
        .select()
        .from(dataDrops)
        .where(and(eq(dataDrops.lineId, l.id), eq(dataDrops.digest, digest)))
        .for('update');
      if (!row) throw new NotFoundError(`drop ${digest} of line ${line}`);
      if (row.status !== 'failed') return toDropInfo(row, line);
      const [updated] = await tx
        .update(dataDrops)
        .set({ status: 'accepted', reason: null, ingestKey, acceptedSeq: NEXT_ACCEPTED })
        .where(eq(dataDrops.id, row.id))
        .returning();
      await appendAuditEntry(tx, {
        actor,
        action: 'drop.status',
        subject: `${line}/drop/${digest}`,
        details: { from: 'failed', to: 'accepted', reason: 'sent again', previousReason: row.reason, ingestKey },
      });
      return toDropInfo(updated!, line);
    });
  }

  /** The drop with this digest on this line, or null. */
  async getDrop(line: string, digest: string): Promise<DropInfo | null> {
    const [row] = await this.db
      .select({ drop: dataDrops })
      .from(dataDrops)
      .innerJoin(lines, eq(lines.id, dataDrops.lineId))
      .where(and(eq(lines.name, line), eq(dataDrops.digest, digest)));
    return row ? toDropInfo(row.drop, line) : null;
  }

  /** Every drop of a line, oldest first. */
  async listDrops(line: string): Promise<DropInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db.select().from(dataDrops).where(eq(dataDrops.lineId, l.id)).orderBy(asc(dataDrops.id));
    return rows.map((r) => toDropInfo(r, line));
  }

  /** Creates an evaluation suite or returns it; a suite's data is fixed, so a different digest is a conflict. Idempotent. */
  async ensureSuite(input: { line: string; name: string; kind: string; dataDigest: string; dropDigest?: string; actor?: string }): Promise<SuiteInfo> {
    const p = parseInput('ensureSuite', EnsureSuiteInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      let dropId: number | null = null;
      if (p.dropDigest !== undefined) dropId = (await dropRow(tx, line, p.dropDigest)).id;
      const [created] = await tx
        .insert(evaluationSuites)
        .values({ lineId: line.id, name: p.name, kind: p.kind, dataDigest: p.dataDigest, dropId })
        .onConflictDoNothing({ target: [evaluationSuites.lineId, evaluationSuites.name] })
        .returning();
      const row =
        created ??
        (
          await tx
            .select()
            .from(evaluationSuites)
            .where(and(eq(evaluationSuites.lineId, line.id), eq(evaluationSuites.name, p.name)))
        )[0]!;
      if (!created) {
        if (row.kind !== p.kind || row.dataDigest !== p.dataDigest) {
          throw new RegistryConflictError(
            `suite ${p.line}/${p.name} exists with kind ${row.kind} and data ${row.dataDigest}; it cannot change to kind ${p.kind} and data ${p.dataDigest} (create a new suite instead)`,
          );
        }
      } else {
        await appendAuditEntry(tx, {
          actor: p.actor ?? DEFAULT_ACTOR,
          action: 'suite.create',
          subject: `${p.line}/suite/${p.name}`,
          details: { kind: p.kind, dataDigest: p.dataDigest, dropDigest: p.dropDigest ?? null },
        });
      }
      return {
        line: p.line,
        name: row.name,
        kind: row.kind,
        dataDigest: row.dataDigest,
        dropDigest: p.dropDigest ?? (await dropDigestOf(tx, row.dropId)),
        createdAt: row.createdAt,
      };
    });
  }

  /**
   * Every suite of a line, oldest first: by the order the drops they came from were accepted in (supersede
   * resolution reads list position as age, and a later drop's answers replace an earlier one's whatever their
   * file names; a failed drop sent again counts from its new acceptance), then by creation; suites without a
   * drop (regression evidence) last.
   */
  async listSuites(line: string): Promise<SuiteInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ suite: evaluationSuites, dropDigest: dataDrops.digest })
      .from(evaluationSuites)
      .leftJoin(dataDrops, eq(dataDrops.id, evaluationSuites.dropId))
      .where(eq(evaluationSuites.lineId, l.id))
      .orderBy(sql`${dataDrops.acceptedSeq} asc nulls last`, asc(evaluationSuites.id));
    return rows.map(({ suite, dropDigest }) => ({
      line,
      name: suite.name,
      kind: suite.kind,
      dataDigest: suite.dataDigest,
      dropDigest: dropDigest ?? null,
      createdAt: suite.createdAt,
    }));
  }

  // ---- training runs -----------------------------------------------------------------------------------

  /** Records the start of a training run; idempotent by key (a retried activity gets the same run). Audited. */
  async startTrainingRun(input: {
    line: string;
    key: string;
    parentVersion: number | null;
    recipe: Json;
    seed: number;
    drops: string[];
    actor?: string;
  }): Promise<TrainingRunInfo> {
    const p = parseInput('startTrainingRun', StartTrainingRunInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      const [existing] = await tx.select().from(trainingRuns).where(eq(trainingRuns.key, p.key));
      if (existing) {
        if (existing.lineId !== line.id || existing.parentNumber !== p.parentVersion) {
          throw new RegistryConflictError(`training run ${p.key} already exists for another line or parent`);
        }
        return this.#runInfo(tx, existing, p.line);
      }
      if (p.parentVersion !== null) await versionRow(tx, line, p.parentVersion);
      const drops = await acceptedDrops(tx, line, p.drops);
      const [created] = await tx
        .insert(trainingRuns)
        .values({ lineId: line.id, key: p.key, parentNumber: p.parentVersion, recipe: p.recipe, seed: p.seed })
        .onConflictDoNothing({ target: trainingRuns.key })
        .returning();
      if (!created) {
        // Another attempt with the same key committed between our read and insert.
        const [raced] = await tx.select().from(trainingRuns).where(eq(trainingRuns.key, p.key));
        return this.#runInfo(tx, raced!, p.line);
      }
      if (drops.length) await tx.insert(trainingRunDrops).values(drops.map((d) => ({ runId: created.id, dropId: d.id })));
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'training.start',
        subject: `${p.line}/run/${p.key}`,
        details: { parent: p.parentVersion, recipe: p.recipe, seed: p.seed, drops: drops.map((d) => d.digest) },
      });
      return this.#runInfo(tx, created, p.line);
    });
  }

  /** Records how a training run ended; idempotent (finishing it again the same way returns it). Audited. */
  async finishTrainingRun(
    key: string,
    input: {
      status: 'completed' | 'failed';
      steps?: number;
      tokens?: number;
      flops?: number;
      wallMs?: number;
      backend?: string;
      finalLoss?: number;
      artifactDigest?: string;
      /** Same as artifactDigest (the training activity's name for it). */
      weightsDigest?: string;
      /** The checkpoints the run wrote or resumed from; `verify` re-hashes them with the version. */
      checkpoints?: { digest: string; step: number }[];
      error?: string;
    },
    actor: string = DEFAULT_ACTOR,
  ): Promise<TrainingRunInfo> {
    const p = parseInput('finishTrainingRun', FinishTrainingRunInput, input);
    const artifactDigest = p.artifactDigest ?? p.weightsDigest ?? null;
    return this.db.transaction(async (tx) => {
      const [run] = await tx.select().from(trainingRuns).where(eq(trainingRuns.key, key)).for('update');
      if (!run) throw new NotFoundError(`training run ${key}`);
      const [line] = await tx.select({ name: lines.name }).from(lines).where(eq(lines.id, run.lineId));
      if (run.status !== 'running') {
        if (run.status === p.status) return this.#runInfo(tx, run, line!.name);
        throw new RegistryConflictError(`training run ${key} already ${run.status}; it cannot become ${p.status}`);
      }
      const [updated] = await tx
        .update(trainingRuns)
        .set({
          status: p.status,
          steps: p.steps,
          tokens: p.tokens,
          flops: p.flops,
          wallMs: p.wallMs,
          backend: p.backend ?? null,
          finalLoss: p.finalLoss ?? null,
          artifactDigest,
          checkpoints: p.checkpoints ?? [],
          error: p.error ?? null,
          finishedAt: new Date(),
        })
        .where(eq(trainingRuns.id, run.id))
        .returning();
      await appendAuditEntry(tx, {
        actor,
        action: 'training.finish',
        subject: `${line!.name}/run/${key}`,
        details: {
          status: p.status,
          steps: p.steps,
          tokens: p.tokens,
          flops: p.flops,
          wallMs: p.wallMs,
          backend: p.backend ?? null,
          finalLoss: p.finalLoss ?? null,
          artifactDigest,
          error: p.error ?? null,
          ...(p.checkpoints?.length ? { checkpoints: p.checkpoints } : {}),
        },
      });
      return this.#runInfo(tx, updated!, line!.name);
    });
  }

  /** The training run with this key, or null. */
  async getTrainingRun(key: string): Promise<TrainingRunInfo | null> {
    const [row] = await this.db
      .select({ run: trainingRuns, line: lines.name })
      .from(trainingRuns)
      .innerJoin(lines, eq(lines.id, trainingRuns.lineId))
      .where(eq(trainingRuns.key, key));
    return row ? this.#runInfo(this.db, row.run, row.line) : null;
  }

  async #runInfo(exec: Exec, run: typeof trainingRuns.$inferSelect, line: string): Promise<TrainingRunInfo> {
    const [drops, produced] = await Promise.all([
      prepared(
        exec
          .select({ digest: dataDrops.digest })
          .from(trainingRunDrops)
          .innerJoin(dataDrops, eq(dataDrops.id, trainingRunDrops.dropId))
          .where(eq(trainingRunDrops.runId, run.id))
          .orderBy(asc(dataDrops.id)),
      ),
      run.versionId === null ? [] : prepared(exec.select({ n: versions.number }).from(versions).where(eq(versions.id, run.versionId))),
    ]);
    return toRunInfo(
      run,
      line,
      drops.map((d) => d.digest),
      produced[0]?.n ?? null,
    );
  }

  // ---- versions ----------------------------------------------------------------------------------------

  /**
   * Allocates the line's next version number, writes and signs its manifest, and records it, in one
   * transaction. Idempotent by trainingRunKey: a retried activity gets the same version back, never a second.
   */
  async createVersion(input: {
    line: string;
    trainingRunKey: string;
    parentVersion: number | null;
    foundationVersion?: { line: string; version: number };
    weightsDigest: string;
    /** Files besides the weights (config, tokenizer...); the weights and the recipe are added when absent. */
    files?: { role: string; digest: string; size: number }[];
    /** A JSON object; validated here. */
    recipe: unknown;
    drops: string[];
    codeRevision: string;
    seed: number;
    backend: string;
    compute: { tokens: number; flops: number; wallMs: number; steps?: number };
    actor?: string;
  }): Promise<{ version: number; manifestDigest: string; existed: boolean }> {
    const p = parseInput('createVersion', CreateVersionInput, input);

    // File I/O before the transaction (and concurrently), so row locks are not held across it.
    const weightsListed = p.files.filter((f) => f.role === 'weights');
    if (weightsListed.length > 0 && !weightsListed.some((f) => f.digest === p.weightsDigest)) {
      throw new InvalidInputError(`createVersion: weightsDigest ${p.weightsDigest} is not among the files with role "weights"`);
    }
    const recipeBytes = Buffer.from(canonicalJson(p.recipe), 'utf8');
    const recipeDigest = sha256Hex(recipeBytes);
    const addRecipe = !p.files.some((f) => f.role === 'recipe');
    const [sizes, weightsSize] = await Promise.all([
      Promise.all(p.files.map((f) => this.store.size(f.digest))),
      weightsListed.length === 0 ? this.store.size(p.weightsDigest) : null,
      addRecipe ? this.store.put(recipeBytes) : null,
    ]);
    const files = new Map<string, ManifestFile>();
    p.files.forEach((f, i) => {
      if (sizes[i] !== f.size) throw new InvalidInputError(`createVersion: file ${f.role} ${f.digest} is ${sizes[i]} bytes in the store, not ${f.size}`);
      files.set(`${f.role} ${f.digest}`, f);
    });
    if (weightsSize !== null) files.set(`weights ${p.weightsDigest}`, { role: 'weights', digest: p.weightsDigest, size: weightsSize });
    if (addRecipe) files.set(`recipe ${recipeDigest}`, { role: 'recipe', digest: recipeDigest, size: recipeBytes.length });
    const fileList = sortFiles([...files.values()]);

    return this.db.transaction(async (tx) => {
      // Locking the run serialises retries of the same activity: the second waits, then finds the version.
      const [found] = await prepared(
        tx
          .select({ run: trainingRuns, line: lines })
          .from(trainingRuns)
          .innerJoin(lines, eq(lines.id, trainingRuns.lineId))
          .where(eq(trainingRuns.key, p.trainingRunKey))
          .for('update', { of: trainingRuns }),
      );
      if (!found)
        throw new NotFoundError(`training run ${p.trainingRunKey}`, `training run ${p.trainingRunKey} does not exist; start it before creating its version`);
      const { run, line } = found;
      if (line.name !== p.line) throw new RegistryConflictError(`training run ${p.trainingRunKey} belongs to line ${line.name}, not ${p.line}`);
      if (run.versionId !== null) {
        const [v] = await prepared(
          tx.select({ number: versions.number, manifestDigest: versions.manifestDigest }).from(versions).where(eq(versions.id, run.versionId)),
        );
        return { version: v!.number, manifestDigest: v!.manifestDigest, existed: true };
      }
      if (run.status === 'failed') throw new RegistryConflictError(`training run ${p.trainingRunKey} failed; it cannot produce a version`);
      if (run.parentNumber !== p.parentVersion) {
        throw new RegistryConflictError(`training run ${p.trainingRunKey} started from parent ${run.parentNumber ?? 'none'}, not ${p.parentVersion ?? 'none'}`);
      }
      // Independent reads, pipelined on the transaction's connection.
      const [, foundation, drops] = await Promise.all([
        p.parentVersion === null ? null : versionRow(tx, line, p.parentVersion),
        foundationVersionOf(tx, line, p.foundationVersion),
        acceptedDrops(tx, line, p.drops),
      ]);

      // The counter row's lock is held to commit: concurrent allocators queue here, and a rollback returns the number.
      const [allocated] = await prepared(
        tx
          .update(lines)
          .set({ nextVersion: sql`${lines.nextVersion} + 1` })
          .where(eq(lines.id, line.id))
          .returning({ number: sql<number>`${lines.nextVersion} - 1` }),
      );
      const number = Number(allocated!.number);
      const createdAt = new Date();
      const manifest: Manifest = {
        _type: 'perennial.manifest/v1',
        line: line.name,
        version: number,
        kind: line.kind,
        parent: p.parentVersion,
        foundation: foundation ? { line: foundation.line, version: foundation.version } : null,
        trainingRun: p.trainingRunKey,
        codeRevision: p.codeRevision,
        seed: p.seed,
        backend: p.backend,
        recipeDigest,
        drops: drops.map((d) => d.digest),
        compute: { tokens: p.compute.tokens, flops: p.compute.flops, wallMs: p.compute.wallMs, steps: p.compute.steps ?? 0 },
        files: fileList,
        createdAt: createdAt.toISOString(),
      };
      // Written (with its fsyncs) while the rows are inserted, and awaited before commit: if the transaction
      // rolls back, an unreferenced blob is all that remains; it never commits without its manifest on disk.
      const envelope = signManifest(this.keys, manifest);
      const manifestDigest = sha256Hex(envelope);
      const written = this.store.put(envelope);
      written.catch(() => {}); // awaited below; this only keeps an early failure elsewhere from leaving it unhandled
      const [row] = await prepared(
        tx
          .insert(versions)
          .values({
            lineId: line.id,
            number,
            parentNumber: p.parentVersion,
            foundationVersionId: foundation?.id ?? null,
            artifactDigest: p.weightsDigest,
            manifestDigest,
            manifestKeyId: this.keys.keyId,
            recipe: p.recipe,
            codeRevision: p.codeRevision,
            seed: p.seed,
            backend: p.backend,
            computeTokens: p.compute.tokens,
            computeFlops: p.compute.flops,
            computeWallMs: p.compute.wallMs,
            computeSteps: p.compute.steps ?? 0,
            createdAt,
          })
          .returning({ id: versions.id }),
      );
      const versionId = row!.id;
      await Promise.all([
        prepared(tx.insert(versionFiles).values(fileList.map((f) => ({ versionId, ...f })))),
        drops.length ? prepared(tx.insert(versionDrops).values(drops.map((d) => ({ versionId, dropId: d.id })))) : null,
        prepared(tx.update(trainingRuns).set({ versionId }).where(eq(trainingRuns.id, run.id))),
      ]);
      if ((await written) !== manifestDigest) throw new Error(`manifest of ${line.name}@${number} was stored under another digest`);
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'version.create',
        subject: `${line.name}@${number}`,
        details: {
          parent: p.parentVersion,
          foundation: manifest.foundation,
          trainingRun: p.trainingRunKey,
          artifactDigest: p.weightsDigest,
          manifestDigest,
          keyId: this.keys.keyId,
          drops: manifest.drops,
        },
      });
      return { version: number, manifestDigest, existed: false };
    });
  }

  /** Version `n` of `line` with its files, drops and training run; throws NotFoundError when there is none. */
  async getVersion(line: string, n: number): Promise<VersionInfo> {
    const [row] = await this.#versionQuery().where(and(eq(lines.name, line), eq(versions.number, n)));
    if (!row) throw new NotFoundError(`version ${line}@${n}`);
    return this.#versionInfo(this.db, row);
  }

  /** The versions of a line in number order (without file lists); `after` pages. */
  async listVersions(line: string, opts: { after?: number; limit?: number } = {}): Promise<VersionSummary[]> {
    const rows = await this.#versionQuery()
      .where(and(eq(lines.name, line), gt(versions.number, opts.after ?? 0)))
      .orderBy(asc(versions.number))
      .limit(opts.limit ?? 1_000_000);
    return rows.map(toVersionSummary);
  }

  #versionQuery() {
    const fv = alias(versions, 'fv');
    const fl = alias(lines, 'fl');
    return this.db
      .select({ v: versions, line: lines.name, kind: lines.kind, fLine: fl.name, fNumber: fv.number })
      .from(versions)
      .innerJoin(lines, eq(lines.id, versions.lineId))
      .leftJoin(fv, eq(fv.id, versions.foundationVersionId))
      .leftJoin(fl, eq(fl.id, fv.lineId))
      .$dynamic();
  }

  async #versionInfo(exec: Exec, row: VersionRow): Promise<VersionInfo> {
    const [files, drops, run] = await Promise.all([
      exec.select().from(versionFiles).where(eq(versionFiles.versionId, row.v.id)),
      exec
        .select({ digest: dataDrops.digest })
        .from(versionDrops)
        .innerJoin(dataDrops, eq(dataDrops.id, versionDrops.dropId))
        .where(eq(versionDrops.versionId, row.v.id))
        .orderBy(asc(dataDrops.id)),
      exec.select({ key: trainingRuns.key }).from(trainingRuns).where(eq(trainingRuns.versionId, row.v.id)),
    ]);
    return {
      ...toVersionSummary(row),
      files: sortFiles(files.map((f) => ({ role: f.role, digest: f.digest, size: f.size }))),
      drops: drops.map((d) => d.digest),
      trainingRun: run[0]?.key ?? null,
    };
  }

  // ---- evaluations and gates ---------------------------------------------------------------------------

  /**
   * Records the metrics of a version on a suite (its own line's, or `suiteLine`'s: an application version is
   * also measured on its foundation's suites), replacing earlier ones (upsert). Audited.
   */
  async recordEvaluation(input: {
    line: string;
    version: number;
    suite: string;
    suiteLine?: string;
    metrics: Json;
    dataDigest?: string;
    backend?: string;
    /** The revision of the code that measured it: a stored result is reused only by the same revision. */
    codeRevision?: string;
    actor?: string;
  }): Promise<EvaluationInfo> {
    const p = parseInput('recordEvaluation', RecordEvaluationInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      const version = await versionRow(tx, line, p.version);
      const suiteLine = p.suiteLine === undefined || p.suiteLine === p.line ? line : await lineRow(tx, p.suiteLine);
      const [suite] = await tx
        .select()
        .from(evaluationSuites)
        .where(and(eq(evaluationSuites.lineId, suiteLine.id), eq(evaluationSuites.name, p.suite)));
      if (!suite) throw new NotFoundError(`suite ${suiteLine.name}/${p.suite}`);
      const evaluatedAt = new Date();
      const values = {
        metrics: p.metrics,
        dataDigest: p.dataDigest ?? null,
        backend: p.backend ?? null,
        weightsDigest: version.artifactDigest,
        codeRevision: p.codeRevision ?? null,
        evaluatedAt,
      };
      await tx
        .insert(evaluations)
        .values({ versionId: version.id, suiteId: suite.id, ...values })
        .onConflictDoUpdate({ target: [evaluations.versionId, evaluations.suiteId], set: values });
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'evaluation.record',
        subject: `${p.line}@${p.version}`,
        details: {
          suite: p.suite,
          suiteLine: suiteLine.name,
          metrics: p.metrics,
          dataDigest: values.dataDigest,
          backend: values.backend,
          weightsDigest: values.weightsDigest,
          codeRevision: values.codeRevision,
        },
      });
      return { line: p.line, version: p.version, suite: p.suite, suiteLine: suiteLine.name, kind: suite.kind, ...values };
    });
  }

  /** Evaluations of a line (or of one version), by version then suite. */
  async getEvaluations(line: string, version?: number): Promise<EvaluationInfo[]> {
    const l = await lineRow(this.db, line);
    const suiteLines = alias(lines, 'sl');
    const rows = await this.db
      .select({
        version: versions.number,
        suite: evaluationSuites.name,
        suiteLine: suiteLines.name,
        kind: evaluationSuites.kind,
        metrics: evaluations.metrics,
        dataDigest: evaluations.dataDigest,
        backend: evaluations.backend,
        weightsDigest: evaluations.weightsDigest,
        codeRevision: evaluations.codeRevision,
        evaluatedAt: evaluations.evaluatedAt,
      })
      .from(evaluations)
      .innerJoin(versions, eq(versions.id, evaluations.versionId))
      .innerJoin(evaluationSuites, eq(evaluationSuites.id, evaluations.suiteId))
      .innerJoin(suiteLines, eq(suiteLines.id, evaluationSuites.lineId))
      .where(and(eq(versions.lineId, l.id), version === undefined ? undefined : eq(versions.number, version)))
      .orderBy(asc(versions.number), asc(evaluationSuites.name));
    return rows.map((r) => ({ line, ...r }));
  }

  /** Records a gate decision; idempotent by key (the same key returns the first decision's id). Audited. */
  async recordGateDecision(input: {
    line: string;
    key: string;
    candidate: number;
    champion: number | null;
    verdict: 'pass' | 'fail';
    suites: unknown[];
    override?: { actor: string; reason: string };
    /** One line a person reads: why the gate decided as it did. */
    summary?: string;
    actor?: string;
  }): Promise<number> {
    const p = parseInput('recordGateDecision', RecordGateDecisionInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      await versionRow(tx, line, p.candidate);
      if (p.champion !== null) await versionRow(tx, line, p.champion);
      const [created] = await tx
        .insert(gateDecisions)
        .values({
          lineId: line.id,
          key: p.key,
          candidateNumber: p.candidate,
          championNumber: p.champion,
          verdict: p.verdict,
          suites: p.suites,
          summary: p.summary ?? null,
          actor: p.actor ?? DEFAULT_ACTOR,
          overrideActor: p.override?.actor ?? null,
          overrideReason: p.override?.reason ?? null,
          overriddenAt: p.override ? new Date() : null,
        })
        .onConflictDoNothing({ target: gateDecisions.key })
        .returning({ id: gateDecisions.id });
      if (!created) {
        const [existing] = await tx.select().from(gateDecisions).where(eq(gateDecisions.key, p.key));
        if (existing!.lineId !== line.id || existing!.candidateNumber !== p.candidate) {
          throw new RegistryConflictError(`gate decision ${p.key} was recorded for another candidate`);
        }
        return existing!.id;
      }
      await appendAuditEntry(tx, {
        actor: p.override?.actor ?? p.actor ?? DEFAULT_ACTOR,
        action: 'gate.decide',
        subject: `${p.line}@${p.candidate}`,
        details: {
          id: created.id,
          key: p.key,
          champion: p.champion,
          verdict: p.verdict,
          suites: p.suites,
          summary: p.summary ?? null,
          override: p.override ?? null,
        },
      });
      return created.id;
    });
  }

  /** The gate decision with this id, or null. */
  async getGateDecision(id: number): Promise<GateDecisionInfo | null> {
    const [row] = await this.db
      .select({ g: gateDecisions, line: lines.name })
      .from(gateDecisions)
      .innerJoin(lines, eq(lines.id, gateDecisions.lineId))
      .where(eq(gateDecisions.id, id));
    return row ? toGateInfo(row.g, row.line) : null;
  }

  /** The latest gate decision about `line@version` as a candidate, or null. */
  async getGateDecisionFor(line: string, version: number): Promise<GateDecisionInfo | null> {
    const [row] = await this.db
      .select({ g: gateDecisions })
      .from(gateDecisions)
      .innerJoin(lines, eq(lines.id, gateDecisions.lineId))
      .where(and(eq(lines.name, line), eq(gateDecisions.candidateNumber, version)))
      .orderBy(desc(gateDecisions.id))
      .limit(1);
    return row ? toGateInfo(row.g, line) : null;
  }

  /**
   * Records that a person overrides a gate decision (so its candidate may be promoted despite the verdict);
   * the verdict itself is kept. Audited. Idempotent for the same actor and reason; a second, different
   * override is a conflict.
   */
  async overrideGateDecision(input: { id: number; actor: string; reason: string }): Promise<GateDecisionInfo> {
    const p = parseInput('overrideGateDecision', OverrideGateInput, input);
    return this.db.transaction(async (tx) => {
      const [g] = await tx.select().from(gateDecisions).where(eq(gateDecisions.id, p.id)).for('update');
      if (!g) throw new NotFoundError(`gate decision ${p.id}`);
      const [line] = await tx.select({ name: lines.name }).from(lines).where(eq(lines.id, g.lineId));
      if (g.overrideActor !== null) {
        if (g.overrideActor === p.actor && g.overrideReason === p.reason) return toGateInfo(g, line!.name);
        throw new RegistryConflictError(`gate decision ${p.id} was already overridden by ${g.overrideActor}`);
      }
      const [updated] = await tx
        .update(gateDecisions)
        .set({ overrideActor: p.actor, overrideReason: p.reason, overriddenAt: new Date() })
        .where(eq(gateDecisions.id, g.id))
        .returning();
      await appendAuditEntry(tx, {
        actor: p.actor,
        action: 'gate.override',
        subject: `${line!.name}@${g.candidateNumber}`,
        details: { id: g.id, key: g.key, verdict: g.verdict, reason: p.reason },
      });
      return toGateInfo(updated!, line!.name);
    });
  }

  // ---- channels, releases, applications ----------------------------------------------------------------

  /** The channels of a line and where they point. */
  async getChannels(line: string): Promise<ChannelInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db.select().from(channels).where(eq(channels.lineId, l.id)).orderBy(asc(channels.id));
    return rows.map((c) => ({ channel: c.name, version: c.versionNumber, epoch: c.epoch, updatedAt: c.updatedAt }));
  }

  /** Creates a custom channel (empty, epoch 0) or returns it. Idempotent; audited on creation. */
  async ensureChannel(input: { line: string; channel: string; actor: string }): Promise<ChannelInfo> {
    const channel = parseInput('ensureChannel', Name, input.channel);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, input.line);
      const [created] = await tx.insert(channels).values({ lineId: line.id, name: channel }).onConflictDoNothing().returning();
      if (created) await appendAuditEntry(tx, { actor: input.actor, action: 'channel.create', subject: `${line.name}@${channel}`, details: {} });
      const row =
        created ??
        (
          await tx
            .select()
            .from(channels)
            .where(and(eq(channels.lineId, line.id), eq(channels.name, channel)))
        )[0]!;
      return { channel: row.name, version: row.versionNumber, epoch: row.epoch, updatedAt: row.updatedAt };
    });
  }

  /**
   * Moves a channel to version `to` if it is still at `expectedEpoch` (compare-and-swap), writing the release
   * record and its audit entry in the same transaction. Throws ChannelConflictError when the epoch moved.
   * Idempotent by requestKey: a retry of a move that committed returns the same result.
   */
  async moveChannel(input: {
    line: string;
    channel: string;
    to: number;
    expectedEpoch: number;
    actor: string;
    reason: string;
    gateDecisionId?: number;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: number }> {
    const p = parseInput('moveChannel', MoveChannelInput, input);
    return (await this.#move(p)) as { epoch: number; releaseId: number; from: number | null; to: number };
  }

  /**
   * Empties a channel (compare-and-swap, like a move): a line's first candidate leaves `canary` when there is no
   * released version to go back to. Recorded as a release with no target version; idempotent by requestKey.
   */
  async clearChannel(input: {
    line: string;
    channel: string;
    expectedEpoch: number;
    actor: string;
    reason: string;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: null }> {
    const p = parseInput('clearChannel', MoveChannelInput.omit({ to: true, gateDecisionId: true }), input);
    return (await this.#move({ ...p, to: null })) as { epoch: number; releaseId: number; from: number | null; to: null };
  }

  async #move(p: {
    line: string;
    channel: string;
    to: number | null;
    expectedEpoch: number;
    actor: string;
    reason: string;
    gateDecisionId?: number | undefined;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: number | null }> {
    try {
      return await this.db.transaction(async (tx) => {
        // The row lock orders concurrent movers; each then sees the committed epoch of the one before.
        const [found] = await prepared(
          tx
            .select({ ch: channels, lineId: lines.id })
            .from(channels)
            .innerJoin(lines, eq(lines.id, channels.lineId))
            .where(and(eq(lines.name, p.line), eq(channels.name, p.channel)))
            .for('update', { of: channels }),
        );
        if (!found) {
          const line = await lineRow(tx, p.line);
          const names = (await tx.select({ name: channels.name }).from(channels).where(eq(channels.lineId, line.id))).map((c) => c.name);
          throw new NotFoundError(
            `channel ${p.line}@${p.channel}`,
            `channel ${p.line}@${p.channel} does not exist (channels: ${names.join(', ')}); create it with ensureChannel`,
          );
        }
        const { ch, lineId } = found;
        // Read after the lock, so a retry sees the release its first attempt committed.
        const [[prior], gate] = await Promise.all([
          prepared(tx.select().from(releases).where(eq(releases.requestKey, p.requestKey))),
          p.gateDecisionId === undefined
            ? undefined
            : prepared(tx.select().from(gateDecisions).where(eq(gateDecisions.id, p.gateDecisionId))).then((r) => r[0] ?? null),
        ]);
        if (prior) {
          if (prior.channelId !== ch.id || prior.toNumber !== p.to) {
            throw new RegistryConflictError(`request key ${p.requestKey} was already used for another move (release ${prior.id})`);
          }
          return { epoch: prior.epoch, releaseId: prior.id, from: prior.fromNumber, to: prior.toNumber };
        }
        if (ch.epoch !== p.expectedEpoch) throw new ChannelConflictError(p.line, p.channel, p.expectedEpoch, ch.epoch, ch.versionNumber);
        if (gate !== undefined) {
          if (gate === null || gate.lineId !== lineId) throw new NotFoundError(`gate decision ${p.gateDecisionId} of line ${p.line}`);
          if (gate.candidateNumber !== p.to)
            throw new GateRefusedError(`gate decision ${gate.id} is about ${p.line}@${gate.candidateNumber}, not ${p.line}@${p.to}`);
          if (gate.verdict !== 'pass' && gate.overrideActor === null) {
            throw new GateRefusedError(`gate decision ${gate.id} failed ${p.line}@${p.to} and was not overridden; it cannot be promoted on it`);
          }
        }
        const epoch = ch.epoch + 1;
        // The version's existence is checked by the foreign keys of both writes (mapped to NotFoundError below).
        const [, [release]] = await Promise.all([
          prepared(tx.update(channels).set({ versionNumber: p.to, epoch, updatedAt: new Date() }).where(eq(channels.id, ch.id))),
          prepared(
            tx
              .insert(releases)
              .values({
                lineId,
                channelId: ch.id,
                fromNumber: ch.versionNumber,
                toNumber: p.to,
                epoch,
                actor: p.actor,
                reason: p.reason,
                gateDecisionId: p.gateDecisionId ?? null,
                requestKey: p.requestKey,
              })
              .returning({ id: releases.id }),
          ),
        ]);
        await appendAuditEntry(tx, {
          actor: p.actor,
          action: 'channel.move',
          subject: `${p.line}@${p.channel}`,
          details: {
            from: ch.versionNumber,
            to: p.to,
            epoch,
            reason: p.reason,
            gateDecisionId: p.gateDecisionId ?? null,
            requestKey: p.requestKey,
            releaseId: release!.id,
          },
        });
        return { epoch, releaseId: release!.id, from: ch.versionNumber, to: p.to };
      });
    } catch (err) {
      const { code, constraint } = pgError(err);
      if (code === '23503' && (constraint === 'releases_to_fk' || constraint === 'channels_version_fk')) throw new NotFoundError(`version ${p.line}@${p.to}`);
      // The same request key committed on another channel at the same moment.
      if (code === '23505' && constraint === 'releases_request_key_key')
        throw new RegistryConflictError(`request key ${p.requestKey} was used by a concurrent move`);
      throw err;
    }
  }

  /** Releases of a line (optionally of one channel), oldest first. */
  async listReleases(line: string, opts: { channel?: string } = {}): Promise<ReleaseInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ r: releases, channel: channels.name })
      .from(releases)
      .innerJoin(channels, eq(channels.id, releases.channelId))
      .where(and(eq(releases.lineId, l.id), opts.channel === undefined ? undefined : eq(channels.name, opts.channel)))
      .orderBy(asc(releases.id));
    return rows.map(({ r, channel }) => toReleaseInfo(r, line, channel));
  }

  /**
   * Binds (or re-binds) an application to `line@channel`. `hold` pins the version given, or the channel's
   * current one. Audited with the binding before and after.
   */
  async bindApplication(input: {
    app: string;
    line: string;
    channel: string;
    policy: 'follow' | 'hold';
    pinnedVersion?: number;
    actor: string;
    reason?: string;
  }): Promise<ApplicationInfo> {
    const p = parseInput('bindApplication', BindApplicationInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      const [ch] = await tx
        .select()
        .from(channels)
        .where(and(eq(channels.lineId, line.id), eq(channels.name, p.channel)));
      if (!ch) throw new NotFoundError(`channel ${p.line}@${p.channel}`);
      let pinned: number | null = null;
      if (p.policy === 'hold') {
        pinned = p.pinnedVersion ?? ch.versionNumber;
        if (pinned === null) throw new InvalidInputError(`bindApplication: ${p.line}@${p.channel} is empty; name the version to hold`);
        await versionRow(tx, line, pinned);
      } else if (p.pinnedVersion !== undefined) {
        throw new InvalidInputError('bindApplication: a following application pins no version');
      }
      const [before] = await tx
        .select({ a: applications, line: lines.name })
        .from(applications)
        .innerJoin(lines, eq(lines.id, applications.lineId))
        .where(eq(applications.name, p.app))
        .for('update', { of: applications });
      if (before && before.line === p.line && before.a.channel === p.channel && before.a.policy === p.policy && before.a.pinnedNumber === pinned) {
        // Binding it again as it is changes nothing and records nothing (a retried activity).
        return toApplicationInfo(before.a, p.line, ch.versionNumber);
      }
      const now = new Date();
      const [row] = await tx
        .insert(applications)
        .values({ name: p.app, lineId: line.id, channel: p.channel, policy: p.policy, pinnedNumber: pinned })
        .onConflictDoUpdate({ target: applications.name, set: { lineId: line.id, channel: p.channel, policy: p.policy, pinnedNumber: pinned, updatedAt: now } })
        .returning();
      await appendAuditEntry(tx, {
        actor: p.actor,
        action: 'application.bind',
        subject: p.app,
        details: {
          reason: p.reason ?? null,
          before: before ? { line: before.line, channel: before.a.channel, policy: before.a.policy, pinned: before.a.pinnedNumber } : null,
          after: { line: p.line, channel: p.channel, policy: p.policy, pinned },
        },
      });
      return {
        app: row!.name,
        line: p.line,
        channel: p.channel,
        policy: p.policy,
        pinnedVersion: pinned,
        resolvedVersion: pinned ?? ch.versionNumber,
        updatedAt: row!.updatedAt,
      };
    });
  }

  /** Every application with the version it resolves to now. */
  async listApplications(): Promise<ApplicationInfo[]> {
    const rows = await this.db
      .select({ a: applications, line: lines.name, channelVersion: channels.versionNumber })
      .from(applications)
      .innerJoin(lines, eq(lines.id, applications.lineId))
      .innerJoin(channels, and(eq(channels.lineId, applications.lineId), eq(channels.name, applications.channel)))
      .orderBy(asc(applications.name));
    return rows.map(({ a, line, channelVersion }) => toApplicationInfo(a, line, channelVersion));
  }

  // ---- audit -------------------------------------------------------------------------------------------

  /** Appends an audit entry: inside `tx` when given (it must be the transaction's last write), else on its own. */
  async appendAudit(input: AuditInput, tx?: Tx): Promise<AuditEntry> {
    if (tx) return appendAuditEntry(tx, input);
    return this.db.transaction((t) => appendAuditEntry(t, input));
  }

  /** Appends an audit entry for an event that changes no registry row (an approval, a regression report). */
  async recordEvent(input: { actor: string; action: string; line: string; version?: number; payload: Json }): Promise<AuditEntry> {
    const p = parseInput('recordEvent', RecordEventInput, input);
    return this.db.transaction(async (tx) => {
      await lineRow(tx, p.line);
      return appendAuditEntry(tx, {
        actor: p.actor,
        action: p.action,
        subject: p.version === undefined ? p.line : `${p.line}@${p.version}`,
        details: p.payload,
      });
    });
  }

  /** Audit entries in order; `after` and `limit` page, `subject` filters. */
  async listAudit(opts: { after?: number; limit?: number; subject?: string } = {}): Promise<AuditEntry[]> {
    return this.db
      .select()
      .from(auditLog)
      .where(and(gt(auditLog.seq, opts.after ?? 0), opts.subject === undefined ? undefined : eq(auditLog.subject, opts.subject)))
      .orderBy(asc(auditLog.seq))
      .limit(opts.limit ?? 1000);
  }

  /** Recomputes the hash chain and checks the signed roots; names the first entry that breaks. Read-only. */
  async verifyAudit(): Promise<AuditVerification> {
    return verifyAuditLog(this.db, this.auditDir, this.trusted);
  }

  /** Verifies the whole log, signs its current Merkle root and appends it to `<auditDir>/roots.jsonl` and the database; refuses if the log does not verify. */
  async exportAuditRoot(): Promise<ExportedRoot> {
    return exportAuditRoot(this.db, this.auditDir, this.keys, this.trusted);
  }

  /** Signs a new root from the last one's frontier and the entries since (O(log n) plus the tail); refuses if the tail or the last root does not check out. */
  async sealAuditLog(): Promise<ExportedRoot> {
    return sealAuditRoot(this.db, this.auditDir, this.keys, this.trusted);
  }

  // ---- verification and lineage ------------------------------------------------------------------------

  /**
   * Re-hashes every file of the selected versions (all, one line's, or one) and checks every manifest
   * signature, that each manifest names its own line and version, and that it lists the recorded files; and
   * every other artifact a version depends on: the stored drops it was trained on and its training run's
   * checkpoints, and (for one version) the drops of its ancestry and foundation, whose records feed replay.
   * Read-only; reports problems instead of throwing.
   */
  async verifyArtifacts(line?: string, version?: number): Promise<ArtifactVerification> {
    if (version !== undefined) parseInput('verifyArtifacts', VersionNumber, version);
    const problems: ArtifactProblem[] = [];
    const checks = new Map<string, Promise<ObjectCheck>>();
    const check = (digest: string, size?: number) => {
      const key = `${digest} ${size ?? ''}`;
      let c = checks.get(key);
      if (!c) checks.set(key, (c = this.store.check(digest, size)));
      return c;
    };
    let checked = 0;
    let afterId = 0;
    if (line !== undefined && !(await this.getLine(line))) throw new NotFoundError(`line ${line}`);
    for (;;) {
      const rows = await this.#versionQuery()
        .where(
          and(
            gt(versions.id, afterId),
            line === undefined ? undefined : eq(lines.name, line),
            version === undefined ? undefined : eq(versions.number, version),
          ),
        )
        .orderBy(asc(versions.id))
        .limit(500);
      if (rows.length === 0) break;
      for (const row of rows) {
        afterId = row.v.id;
        checked += 1;
        problems.push(...(await this.#verifyVersion(row, check)));
      }
    }
    if (version !== undefined && checked === 0) throw new NotFoundError(`version ${line}@${version}`);
    if (line !== undefined && version !== undefined) problems.push(...(await this.#verifyAncestry(line, version, check)));
    return { ok: problems.length === 0, checked, files: checks.size, problems };
  }

  /** The drops of a version's parents and foundation (replayed into its training), named under the version. */
  async #verifyAncestry(line: string, version: number, check: (digest: string, size?: number) => Promise<ObjectCheck>): Promise<ArtifactProblem[]> {
    const problems: ArtifactProblem[] = [];
    const seen = new Set<string>();
    const visit = async (l: Lineage, own: boolean) => {
      const groups = [...(own ? [] : [{ from: l.version, drops: l.drops }]), ...l.parents.map((p) => ({ from: p.version, drops: p.drops }))];
      for (const { from, drops } of groups) {
        for (const d of drops) {
          if (seen.has(d.digest)) continue;
          seen.add(d.digest);
          const c = await check(d.digest);
          if (c.problem !== null)
            problems.push({
              line,
              version,
              file: `drop ${d.source} ${d.digest} (replayed from ${from.line}@${from.version})`,
              reason: c.problem,
              ...(c.path ? { path: c.path } : {}),
            });
        }
      }
    };
    const depth = 1_000_000;
    const mine = await this.lineage(line, version, { depth });
    for (const d of mine.drops) seen.add(d.digest); // checked as the version's own
    await visit(mine, true);
    if (mine.foundation) await visit(await this.lineage(mine.foundation.line, mine.foundation.version, { depth }), false);
    return problems;
  }

  async #verifyVersion(row: VersionRow, check: (digest: string, size?: number) => Promise<ObjectCheck>): Promise<ArtifactProblem[]> {
    const where = { line: row.line, version: row.v.number };
    const problems: ArtifactProblem[] = [];
    const manifestCheck = await check(row.v.manifestDigest);
    if (manifestCheck.problem !== null)
      return [{ ...where, file: `manifest ${row.v.manifestDigest}`, reason: manifestCheck.problem, path: manifestCheck.path }];
    let bytes: Uint8Array;
    try {
      bytes = await this.store.get(row.v.manifestDigest);
    } catch (err) {
      return [{ ...where, file: `manifest ${row.v.manifestDigest}`, reason: err instanceof ArtifactIntegrityError ? err.problem : String(err) }];
    }
    const opened = openManifest(bytes, this.trusted);
    if (!opened.ok) return [{ ...where, file: `manifest ${row.v.manifestDigest}`, reason: opened.reason }];
    const m = opened.manifest;
    if (m.line !== row.line || m.version !== row.v.number) {
      problems.push({
        ...where,
        file: `manifest ${row.v.manifestDigest}`,
        reason: `the signed manifest is for ${m.line}@${m.version}, not ${row.line}@${row.v.number} (a signature replayed onto another version)`,
      });
      return problems;
    }
    if (opened.keyId !== row.v.manifestKeyId) {
      problems.push({
        ...where,
        file: `manifest ${row.v.manifestDigest}`,
        reason: `signed by key ${opened.keyId.slice(0, 16)}…, but the version records key ${row.v.manifestKeyId.slice(0, 16)}…`,
      });
    }
    const weights = m.files.filter((f) => f.role === 'weights').map((f) => f.digest);
    if (!weights.includes(row.v.artifactDigest)) {
      problems.push({ ...where, file: `weights ${row.v.artifactDigest}`, reason: 'the recorded weights digest is not in the signed manifest' });
    }
    // The drops it was trained on (their records also feed later versions' replay) and its run's checkpoints.
    const drops = await this.db
      .select({ digest: dataDrops.digest, source: dataDrops.source })
      .from(versionDrops)
      .innerJoin(dataDrops, eq(dataDrops.id, versionDrops.dropId))
      .where(eq(versionDrops.versionId, row.v.id))
      .orderBy(asc(dataDrops.id));
    for (const d of drops) {
      const c = await check(d.digest);
      if (c.problem !== null) problems.push({ ...where, file: `drop ${d.source} ${d.digest}`, reason: c.problem, ...(c.path ? { path: c.path } : {}) });
    }
    const [run] = await this.db.select({ checkpoints: trainingRuns.checkpoints }).from(trainingRuns).where(eq(trainingRuns.versionId, row.v.id));
    for (const cp of run?.checkpoints ?? []) {
      const c = await check(cp.digest);
      if (c.problem !== null)
        problems.push({ ...where, file: `checkpoint ${cp.digest} (step ${cp.step})`, reason: c.problem, ...(c.path ? { path: c.path } : {}) });
    }
    const recorded = await this.db.select().from(versionFiles).where(eq(versionFiles.versionId, row.v.id));
    const signedSet = new Set(m.files.map((f) => `${f.role} ${f.digest} ${f.size}`));
    for (const f of recorded) {
      if (!signedSet.has(`${f.role} ${f.digest} ${f.size}`))
        problems.push({ ...where, file: `${f.role} ${f.digest}`, reason: 'recorded in the registry but not in the signed manifest' });
    }
    const recordedSet = new Set(recorded.map((f) => `${f.role} ${f.digest} ${f.size}`));
    for (const f of m.files) {
      if (!recordedSet.has(`${f.role} ${f.digest} ${f.size}`))
        problems.push({ ...where, file: `${f.role} ${f.digest}`, reason: 'in the signed manifest but not recorded in the registry' });
      const c = await check(f.digest, f.size);
      if (c.problem !== null) problems.push({ ...where, file: `${f.role} ${f.digest}`, reason: c.problem, ...(c.path ? { path: c.path } : {}) });
    }
    return problems;
  }

  /**
   * The chain behind and after a version: drops -> training run -> version -> parents -> foundation version
   * -> releases -> applications running it now. `depth` bounds how many parents are followed.
   */
  async lineage(line: string, version: number, opts: { depth?: number } = {}): Promise<Lineage> {
    const depth = parseInput('lineage depth', Count, opts.depth ?? 64);
    // One query, one JSON document: a lineage touches eight tables, and building and mapping eight
    // Drizzle queries cost more than the database's work. The parent walk is a recursive CTE over
    // (line_id, number), one index probe per step, fetching one parent beyond `depth` to tell truncation.
    const result = await queryPrepared<{ lineage: LineageJson }>(
      this.db,
      sql`
      with recursive target as (
        select v.*, l.name as line_name, l.kind as line_kind
        from versions v join lines l on l.id = v.line_id
        where l.name = ${line} and v.number = ${version}
      ), chain(number, depth) as (
        select parent_number, 1 from target
        union all
        select v.parent_number, c.depth + 1 from chain c join versions v on v.line_id = (select line_id from target) and v.number = c.number
        where c.number is not null and c.depth <= ${depth}
      )
      select json_build_object(
        'kind', t.line_kind,
        'version', ${versionJson(sql`t`, line)},
        'files', coalesce((select json_agg(json_build_object('role', f.role, 'digest', f.digest, 'size', f.size)) from version_files f where f.version_id = t.id), '[]'),
        'drops', ${dropsJson(sql`t.id`)},
        'run', (select json_build_object(
            'key', r.key, 'parentVersion', r.parent_number, 'recipe', r.recipe, 'seed', r.seed, 'status', r.status,
            'steps', r.steps, 'tokens', r.tokens, 'flops', r.flops, 'wallMs', r.wall_ms, 'backend', r.backend,
            'finalLoss', r.final_loss, 'artifactDigest', r.artifact_digest, 'error', r.error,
            'startedAt', r.started_at, 'finishedAt', r.finished_at,
            'drops', coalesce((select json_agg(d.digest order by d.id) from training_run_drops rd join data_drops d on d.id = rd.drop_id where rd.run_id = r.id), '[]'))
          from training_runs r where r.version_id = t.id),
        'parents', coalesce((
          select json_agg(json_build_object('version', ${versionJson(sql`v`, line)}, 'drops', ${dropsJson(sql`v.id`)}) order by v.number desc)
          from chain c join versions v on v.line_id = t.line_id and v.number = c.number), '[]'),
        'foundation', (select ${versionJson(sql`fv`)} from versions fv where fv.id = t.foundation_version_id),
        'releases', coalesce((
          select json_agg(json_build_object(
            'id', r.id, 'channel', ch.name, 'fromVersion', r.from_number, 'toVersion', r.to_number, 'epoch', r.epoch,
            'actor', r.actor, 'reason', r.reason, 'gateDecisionId', r.gate_decision_id, 'requestKey', r.request_key, 'at', r.created_at) order by r.id)
          from releases r join channels ch on ch.id = r.channel_id
          where r.line_id = t.line_id and (r.to_number = t.number or r.from_number = t.number)), '[]'),
        'applications', coalesce((
          select json_agg(json_build_object(
            'app', a.name, 'line', al.name, 'channel', a.channel, 'policy', a.policy, 'pinnedVersion', a.pinned_number,
            'resolvedVersion', rv.number, 'updatedAt', a.updated_at, 'direct', rv.id = t.id) order by a.name)
          from applications a
          join lines al on al.id = a.line_id
          join channels ch on ch.line_id = a.line_id and ch.name = a.channel
          join versions rv on rv.line_id = a.line_id and rv.number = coalesce(a.pinned_number, ch.version_number)
          where rv.id = t.id or rv.foundation_version_id = t.id), '[]')
      ) as lineage
      from target t`,
    );
    const doc = result[0]?.lineage;
    if (!doc) {
      await lineRow(this.db, line); // names a missing line rather than a missing version
      throw new NotFoundError(`version ${line}@${version}`);
    }
    const drops = doc.drops.map((d) => dropFromJson(d, line));
    const parents = doc.parents.slice(0, depth).map((p) => ({ version: versionFromJson(p.version), drops: p.drops.map((d) => dropFromJson(d, line)) }));
    const run = doc.run;
    const trainingRun: TrainingRunInfo | null = run && {
      ...run,
      line,
      seed: Number(run.seed),
      tokens: Number(run.tokens),
      wallMs: Number(run.wallMs),
      version,
      startedAt: new Date(run.startedAt),
      finishedAt: run.finishedAt === null ? null : new Date(run.finishedAt),
    };
    return {
      version: {
        ...versionFromJson(doc.version),
        files: sortFiles(doc.files.map((f) => ({ ...f, size: Number(f.size) }))),
        drops: drops.map((d) => d.digest),
        trainingRun: run?.key ?? null,
      },
      kind: doc.kind,
      trainingRun,
      drops,
      parents,
      parentsTruncated: doc.parents.length > depth,
      allDrops: [
        ...new Set(
          [...parents]
            .reverse()
            .flatMap((p) => p.drops.map((d) => d.digest))
            .concat(drops.map((d) => d.digest)),
        ),
      ],
      foundation: doc.foundation && versionFromJson(doc.foundation),
      releases: doc.releases.map((r) => ({ ...r, line, epoch: Number(r.epoch), at: new Date(r.at) })),
      applications: doc.applications.map(({ direct, ...a }) => ({
        ...a,
        updatedAt: new Date(a.updatedAt),
        via: direct ? ('direct' as const) : ('foundation' as const),
        runs: { line: a.line, version: a.resolvedVersion! },
      })),
    };
  }
}

// ---- row helpers -----------------------------------------------------------------------------------------

type LineRow = typeof lines.$inferSelect;
type VersionRow = { v: typeof versions.$inferSelect; line: string; kind: 'foundation' | 'application'; fLine: string | null; fNumber: number | null };

async function lineRow(exec: Exec, name: string, forUpdate = false): Promise<LineRow> {
  const q = exec.select().from(lines).where(eq(lines.name, name));
  const [row] = forUpdate ? await prepared(q.for('update')) : await prepared(q);
  if (!row) throw new NotFoundError(`line ${name}`);
  return row;
}

async function versionRow(exec: Exec, line: LineRow, n: number): Promise<typeof versions.$inferSelect> {
  const [row] = await prepared(
    exec
      .select()
      .from(versions)
      .where(and(eq(versions.lineId, line.id), eq(versions.number, n))),
  );
  if (!row) throw new NotFoundError(`version ${line.name}@${n}`);
  return row;
}

/**
 * The foundation version an application version sits on, checked against the line's foundation line; null
 * for a foundation line, which must name none.
 */
async function foundationVersionOf(
  exec: Exec,
  line: LineRow,
  wanted: { line: string; version: number } | undefined,
): Promise<{ id: number; line: string; version: number } | null> {
  if (line.kind === 'foundation') {
    if (wanted) throw new InvalidInputError(`createVersion: ${line.name} is a foundation line; it sits on no foundation version`);
    return null;
  }
  if (!wanted) throw new InvalidInputError(`createVersion: ${line.name} is an application line; name the foundation version it sits on`);
  const [row] = await prepared(
    exec
      .select({ line: lines.name, id: versions.id })
      .from(lines)
      .leftJoin(versions, and(eq(versions.lineId, lines.id), eq(versions.number, wanted.version)))
      .where(eq(lines.id, line.foundationLineId!)),
  );
  if (row!.line !== wanted.line) throw new InvalidInputError(`createVersion: ${line.name} builds on foundation line ${row!.line}, not ${wanted.line}`);
  if (row!.id === null) throw new NotFoundError(`version ${wanted.line}@${wanted.version}`);
  return { id: row!.id, line: wanted.line, version: wanted.version };
}

async function dropRow(exec: Exec, line: LineRow, digest: string): Promise<typeof dataDrops.$inferSelect> {
  const [row] = await exec
    .select()
    .from(dataDrops)
    .where(and(eq(dataDrops.lineId, line.id), eq(dataDrops.digest, digest)));
  if (!row) throw new NotFoundError(`drop ${digest} of line ${line.name}`);
  return row;
}

async function dropDigestOf(exec: Exec, dropId: number | null): Promise<string | null> {
  if (dropId === null) return null;
  const [row] = await exec.select({ digest: dataDrops.digest }).from(dataDrops).where(eq(dataDrops.id, dropId));
  return row?.digest ?? null;
}

/** The drops named by digest, all of which must exist on the line and have been accepted; in the order given. */
async function acceptedDrops(exec: Exec, line: LineRow, digests: string[]): Promise<(typeof dataDrops.$inferSelect)[]> {
  const unique = [...new Set(digests)];
  if (unique.length === 0) return [];
  const rows = await prepared(
    exec
      .select()
      .from(dataDrops)
      .where(and(eq(dataDrops.lineId, line.id), inArray(dataDrops.digest, unique))),
  );
  const byDigest = new Map(rows.map((r) => [r.digest, r]));
  const missing = unique.filter((d) => !byDigest.has(d));
  if (missing.length) throw new NotFoundError(`drop ${missing[0]} of line ${line.name}`, `drops not recorded on line ${line.name}: ${missing.join(', ')}`);
  const refused = rows.filter((r) => r.status !== 'accepted');
  if (refused.length)
    throw new InvalidInputError(`drop ${refused[0]!.digest} of line ${line.name} is ${refused[0]!.status}; only accepted drops may be trained on`);
  return unique.map((d) => byDigest.get(d)!);
}

function toLineInfo(row: LineRow, foundationLine: string | null): LineInfo {
  return {
    name: row.name,
    kind: row.kind,
    foundationLine,
    modelConfig: row.modelConfig,
    recipe: row.defaultRecipe,
    gateRules: row.gateRules,
    promotion: row.promotion,
    scheduled: row.scheduled,
    latestVersion: row.nextVersion > 1 ? row.nextVersion - 1 : null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** The next number of the accepted sequence, drawn in the inserting or re-accepting statement. */
const NEXT_ACCEPTED = sql`nextval('data_drops_accepted_seq')`;

function toDropInfo(row: typeof dataDrops.$inferSelect, line: string): DropInfo {
  return {
    line,
    digest: row.digest,
    source: row.source,
    status: row.status,
    counts: { records: row.records, train: row.trainRecords, heldOut: row.heldOutRecords, probes: row.probeRecords, rejected: row.rejectedRecords },
    reason: row.reason,
    storedPath: row.storedPath,
    ingestKey: row.ingestKey,
    receivedAt: row.receivedAt,
  };
}

function toVersionSummary(row: VersionRow): VersionSummary {
  const v = row.v;
  return {
    line: row.line,
    version: v.number,
    parentVersion: v.parentNumber,
    foundationVersion: row.fLine !== null && row.fNumber !== null ? { line: row.fLine, version: row.fNumber } : null,
    weightsDigest: v.artifactDigest,
    manifestDigest: v.manifestDigest,
    manifestKeyId: v.manifestKeyId,
    recipe: v.recipe,
    codeRevision: v.codeRevision,
    seed: v.seed,
    backend: v.backend,
    compute: { tokens: v.computeTokens, flops: v.computeFlops, wallMs: v.computeWallMs, steps: v.computeSteps },
    createdAt: v.createdAt,
  };
}

/** A version as lineage's SQL renders it: `v` is a versions row alias; its line (unless given) and foundation are looked up. */
function versionJson(v: SQL, line?: string): SQL {
  return sql`json_build_object(
    'line', ${line === undefined ? sql`(select name from lines where id = ${v}.line_id)` : sql`${line}::text`}, 'version', ${v}.number, 'parentVersion', ${v}.parent_number,
    'foundationVersion', (select json_build_object('line', fl.name, 'version', f.number) from versions f join lines fl on fl.id = f.line_id where f.id = ${v}.foundation_version_id),
    'weightsDigest', ${v}.artifact_digest, 'manifestDigest', ${v}.manifest_digest, 'manifestKeyId', ${v}.manifest_key_id,
    'recipe', ${v}.recipe, 'codeRevision', ${v}.code_revision, 'seed', ${v}.seed, 'backend', ${v}.backend,
    'compute', json_build_object('tokens', ${v}.compute_tokens, 'flops', ${v}.compute_flops, 'wallMs', ${v}.compute_wall_ms, 'steps', ${v}.compute_steps),
    'createdAt', ${v}.created_at)`;
}

/** The drops of the version with id `versionId`, as lineage's SQL renders them, oldest first. */
function dropsJson(versionId: SQL): SQL {
  return sql`coalesce((select json_agg(json_build_object(
    'digest', d.digest, 'source', d.source, 'status', d.status, 'records', d.records, 'train', d.train_records,
    'heldOut', d.held_out_records, 'probes', d.probe_records, 'rejected', d.rejected_records, 'reason', d.reason,
    'storedPath', d.stored_path, 'ingestKey', d.ingest_key, 'receivedAt', d.received_at) order by d.id)
    from version_drops vd join data_drops d on d.id = vd.drop_id where vd.version_id = ${versionId}), '[]')`;
}

type Jsonified<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };
type DropJson = Omit<Jsonified<DropInfo>, 'line' | 'counts'> & { records: number; train: number; heldOut: number; probes: number; rejected: number };

/** The document lineage's query returns (JSON: timestamps as strings). */
interface LineageJson {
  kind: 'foundation' | 'application';
  version: Jsonified<VersionSummary>;
  files: ManifestFile[];
  drops: DropJson[];
  run: Omit<Jsonified<TrainingRunInfo>, 'line' | 'version'> | null;
  parents: { version: Jsonified<VersionSummary>; drops: DropJson[] }[];
  foundation: Jsonified<VersionSummary> | null;
  releases: Omit<Jsonified<ReleaseInfo>, 'line'>[];
  applications: (Jsonified<ApplicationInfo> & { direct: boolean })[];
}

function versionFromJson(v: Jsonified<VersionSummary>): VersionSummary {
  return {
    ...v,
    seed: Number(v.seed),
    compute: { tokens: Number(v.compute.tokens), flops: Number(v.compute.flops), wallMs: Number(v.compute.wallMs), steps: v.compute.steps },
    createdAt: new Date(v.createdAt),
  };
}

function dropFromJson(d: DropJson, line: string): DropInfo {
  const { records, train, heldOut, probes, rejected, receivedAt, ...rest } = d;
  return { ...rest, line, counts: { records, train, heldOut, probes, rejected }, receivedAt: new Date(receivedAt) };
}

function toRunInfo(run: typeof trainingRuns.$inferSelect, line: string, drops: string[], version: number | null): TrainingRunInfo {
  return {
    line,
    key: run.key,
    parentVersion: run.parentNumber,
    recipe: run.recipe,
    seed: run.seed,
    status: run.status,
    steps: run.steps,
    tokens: run.tokens,
    flops: run.flops,
    wallMs: run.wallMs,
    backend: run.backend,
    finalLoss: run.finalLoss,
    artifactDigest: run.artifactDigest,
    error: run.error,
    version,
    drops,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
  };
}

function toGateInfo(g: typeof gateDecisions.$inferSelect, line: string): GateDecisionInfo {
  return {
    id: g.id,
    line,
    key: g.key,
    candidate: g.candidateNumber,
    champion: g.championNumber,
    verdict: g.verdict,
    suites: g.suites,
    summary: g.summary,
    actor: g.actor,
    override: g.overrideActor === null ? null : { actor: g.overrideActor, reason: g.overrideReason ?? '', at: g.overriddenAt ?? g.createdAt },
    createdAt: g.createdAt,
  };
}

function toReleaseInfo(r: typeof releases.$inferSelect, line: string, channel: string): ReleaseInfo {
  return {
    id: r.id,
    line,
    channel,
    fromVersion: r.fromNumber,
    toVersion: r.toNumber,
    epoch: r.epoch,
    actor: r.actor,
    reason: r.reason,
    gateDecisionId: r.gateDecisionId,
    requestKey: r.requestKey,
    at: r.createdAt,
  };
}

function toApplicationInfo(a: typeof applications.$inferSelect, line: string, channelVersion: number | null): ApplicationInfo {
  return {
    app: a.name,
    line,
    channel: a.channel,
    policy: a.policy,
    pinnedVersion: a.pinnedNumber,
    resolvedVersion: a.policy === 'hold' ? a.pinnedNumber : channelVersion,
    updatedAt: a.updatedAt,
  };
}
