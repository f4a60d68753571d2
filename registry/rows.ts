/** Row lookups and row -> entity mappers shared by the registry's aggregate modules. */
import { type SQL, and, eq, inArray, sql } from 'drizzle-orm';
import { applications, dataDrops, gateDecisions, lines, releases, trainingRuns, versions } from '../schemas/db/index.ts';
import { InvalidInputError, NotFoundError } from '../schemas/contracts/errors.ts';
import type { Tx } from './audit.ts';
import { type Database, prepared } from './db.ts';
import type { ManifestFile } from './manifest.ts';
import type { ApplicationInfo, DropInfo, GateDecisionInfo, LineInfo, ReleaseInfo, TrainingRunInfo, VersionSummary } from './types.ts';

export type Exec = Database | Tx;
export const DEFAULT_ACTOR = 'perennial';

/** The SQLSTATE and constraint of a PostgreSQL error, looking through Drizzle's wrapper. */
export function pgError(err: unknown): { code?: string; constraint?: string } {
  for (let e = err as { code?: unknown; constraint_name?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code))
      return { code: e.code, constraint: typeof e.constraint_name === 'string' ? e.constraint_name : undefined };
  }
  return {};
}

// ---- row helpers -----------------------------------------------------------------------------------------

export type LineRow = typeof lines.$inferSelect;
export type VersionRow = { v: typeof versions.$inferSelect; line: string; kind: 'foundation' | 'application'; fLine: string | null; fNumber: number | null };

export async function lineRow(exec: Exec, name: string, forUpdate = false): Promise<LineRow> {
  const q = exec.select().from(lines).where(eq(lines.name, name));
  const [row] = forUpdate ? await prepared(q.for('update')) : await prepared(q);
  if (!row) throw new NotFoundError(`line ${name}`);
  return row;
}

export async function versionRow(exec: Exec, line: LineRow, n: number): Promise<typeof versions.$inferSelect> {
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
export async function foundationVersionOf(
  exec: Exec,
  line: LineRow,
  wanted: { line: string; version: number } | undefined,
): Promise<{ id: number; line: string; version: number } | null> {
  if (line.kind === 'foundation') {
    if (wanted) throw new InvalidInputError(`createVersion: ${line.name} is a foundation line; it sits on no foundation version`);
    return null;
  }
  if (!wanted) throw new InvalidInputError(`createVersion: ${line.name} is an application line; name the foundation version it sits on`);
  // Its own foundation line's version, or (a re-base, whose transfer is registered before the line moves) a version
  // of another foundation line.
  const [row] = await prepared(
    exec
      .select({ line: lines.name, kind: lines.kind, id: versions.id })
      .from(lines)
      .leftJoin(versions, and(eq(versions.lineId, lines.id), eq(versions.number, wanted.version)))
      .where(eq(lines.name, wanted.line)),
  );
  if (!row) throw new NotFoundError(`line ${wanted.line}`);
  if (row.kind !== 'foundation')
    throw new InvalidInputError(`createVersion: ${wanted.line} is an application line; ${line.name} can only sit on a foundation version`);
  if (row.id === null) throw new NotFoundError(`version ${wanted.line}@${wanted.version}`);
  return { id: row.id, line: wanted.line, version: wanted.version };
}

export async function dropRow(exec: Exec, line: LineRow, digest: string): Promise<typeof dataDrops.$inferSelect> {
  const [row] = await exec
    .select()
    .from(dataDrops)
    .where(and(eq(dataDrops.lineId, line.id), eq(dataDrops.digest, digest)));
  if (!row) throw new NotFoundError(`drop ${digest} of line ${line.name}`);
  return row;
}

export async function dropDigestOf(exec: Exec, dropId: number | null): Promise<string | null> {
  if (dropId === null) return null;
  const [row] = await exec.select({ digest: dataDrops.digest }).from(dataDrops).where(eq(dataDrops.id, dropId));
  return row?.digest ?? null;
}

/** The drops named by digest, all of which must exist on the line and have been accepted; in the order given. */
export async function acceptedDrops(exec: Exec, line: LineRow, digests: string[]): Promise<(typeof dataDrops.$inferSelect)[]> {
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

export function toLineInfo(row: LineRow, foundationLine: string | null): LineInfo {
  return {
    name: row.name,
    kind: row.kind,
    foundationLine,
    modelConfig: row.modelConfig,
    recipe: row.defaultRecipe,
    gateRules: row.gateRules,
    promotion: row.promotion,
    limits: row.limits,
    scheduled: row.scheduled,
    upgradePolicy: row.upgradePolicy,
    latestVersion: row.nextVersion > 1 ? row.nextVersion - 1 : null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** The next number of the accepted sequence, drawn in the inserting or re-accepting statement. */
export const NEXT_ACCEPTED = sql`nextval('data_drops_accepted_seq')`;

export function toDropInfo(row: typeof dataDrops.$inferSelect, line: string): DropInfo {
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

export function toVersionSummary(row: VersionRow): VersionSummary {
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
export function versionJson(v: SQL, line?: string): SQL {
  return sql`json_build_object(
    'line', ${line === undefined ? sql`(select name from lines where id = ${v}.line_id)` : sql`${line}::text`}, 'version', ${v}.number, 'parentVersion', ${v}.parent_number,
    'foundationVersion', (select json_build_object('line', fl.name, 'version', f.number) from versions f join lines fl on fl.id = f.line_id where f.id = ${v}.foundation_version_id),
    'weightsDigest', ${v}.artifact_digest, 'manifestDigest', ${v}.manifest_digest, 'manifestKeyId', ${v}.manifest_key_id,
    'recipe', ${v}.recipe, 'codeRevision', ${v}.code_revision, 'seed', ${v}.seed, 'backend', ${v}.backend,
    'compute', json_build_object('tokens', ${v}.compute_tokens, 'flops', ${v}.compute_flops, 'wallMs', ${v}.compute_wall_ms, 'steps', ${v}.compute_steps),
    'createdAt', ${v}.created_at)`;
}

/** The drops of the version with id `versionId`, as lineage's SQL renders them, oldest first. */
export function dropsJson(versionId: SQL): SQL {
  return sql`coalesce((select json_agg(json_build_object(
    'digest', d.digest, 'source', d.source, 'status', d.status, 'records', d.records, 'train', d.train_records,
    'heldOut', d.held_out_records, 'probes', d.probe_records, 'rejected', d.rejected_records, 'reason', d.reason,
    'storedPath', d.stored_path, 'ingestKey', d.ingest_key, 'receivedAt', d.received_at) order by d.id)
    from version_drops vd join data_drops d on d.id = vd.drop_id where vd.version_id = ${versionId}), '[]')`;
}

export type Jsonified<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };
export type DropJson = Omit<Jsonified<DropInfo>, 'line' | 'counts'> & { records: number; train: number; heldOut: number; probes: number; rejected: number };

/** The document lineage's query returns (JSON: timestamps as strings). */
export interface LineageJson {
  kind: 'foundation' | 'application';
  version: Jsonified<VersionSummary>;
  files: ManifestFile[];
  drops: DropJson[];
  run: Omit<Jsonified<TrainingRunInfo>, 'line' | 'version'> | null;
  parents: { version: Jsonified<VersionSummary>; drops: DropJson[] }[];
  foundation: Jsonified<VersionSummary> | null;
  plasticity?: Record<string, unknown> | null;
  releases: Omit<Jsonified<ReleaseInfo>, 'line'>[];
  applications: (Jsonified<ApplicationInfo> & { direct: boolean })[];
}

export function versionFromJson(v: Jsonified<VersionSummary>): VersionSummary {
  return {
    ...v,
    seed: Number(v.seed),
    compute: { tokens: Number(v.compute.tokens), flops: Number(v.compute.flops), wallMs: Number(v.compute.wallMs), steps: v.compute.steps },
    createdAt: new Date(v.createdAt),
  };
}

export function dropFromJson(d: DropJson, line: string): DropInfo {
  const { records, train, heldOut, probes, rejected, receivedAt, ...rest } = d;
  return { ...rest, line, counts: { records, train, heldOut, probes, rejected }, receivedAt: new Date(receivedAt) };
}

export function toRunInfo(run: typeof trainingRuns.$inferSelect, line: string, drops: string[], version: number | null): TrainingRunInfo {
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
    checkpoints: run.checkpoints,
    error: run.error,
    version,
    drops,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
  };
}

export function toGateInfo(g: typeof gateDecisions.$inferSelect, line: string): GateDecisionInfo {
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

export function toReleaseInfo(r: typeof releases.$inferSelect, line: string, channel: string): ReleaseInfo {
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

export function toApplicationInfo(a: typeof applications.$inferSelect, line: string, channelVersion: number | null): ApplicationInfo {
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
