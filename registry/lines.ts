/** The registry's lines module: lines, their data drops and evaluation suites. The Registry facade composes it. */
import { and, asc, eq, sql } from 'drizzle-orm';
import { DEFAULT_CHANNELS, channels, dataDrops, evaluationSuites, lines } from '../schemas/db/index.ts';
import { InvalidInputError, NotFoundError, RegistryConflictError } from '../schemas/contracts/errors.ts';
import { appendAuditEntry } from './audit.ts';
import { EnsureLineInput, EnsureSuiteInput, RecordDropInput, SetDropStatusInput, UpdateLineInput, parseInput } from './inputs.ts';
import type { DropInfo, Json, LineInfo, SuiteInfo } from './types.ts';
import { DEFAULT_ACTOR, type Exec, NEXT_ACCEPTED, dropDigestOf, dropRow, lineRow, toDropInfo, toLineInfo } from './rows.ts';
import { RegistryCore } from './core.ts';
import { canonicalJson } from './canonical.ts';
import { GateRules, Recipe, StoredLineLimits } from '../schemas/io.ts';
import { effectiveLimits, limitProblems, rlLimitProblems } from '../domain/recipe-limits.ts';
import { TRANSFER_STEPS_FACTOR } from '../schemas/defaults.ts';

/**
 * A recipe or gate rules that a cycle's line snapshot would refuse are refused when they are stored, naming the
 * field, so that no line is kept that can never run a cycle (its snapshot would fail on every retry).
 */
function checkRunnable(op: string, p: { recipe?: unknown; gateRules?: unknown; limits?: unknown }): void {
  for (const [field, schema] of [
    ['recipe', Recipe],
    ['gateRules', GateRules],
    ['limits', StoredLineLimits],
  ] as const) {
    if (p[field] === undefined) continue;
    const r = schema.safeParse(p[field]);
    if (!r.success) throw new InvalidInputError(`${op}: ${r.error.issues.map((i) => `${[field, ...i.path].join('.')}: ${i.message}`).join('; ')}`);
  }
}

/**
 * A line whose own recipe (or its transfer's) breaks its limits could run no cycle: refused when either is stored,
 * naming the limit. The FLOPs limit needs the model's FLOPs, which the registry does not compute: the CLI checks it
 * (scripts/commands/line.ts) and training enforces it.
 */
function checkWithinLimits(op: string, name: string, kind: string, recipe: Recipe, limits: StoredLineLimits): void {
  const l = effectiveLimits(limits, recipe);
  // Only an application line is transferred onto a new foundation version.
  const transfer = kind === 'application' ? [{ ...recipe, steps: recipe.steps * TRANSFER_STEPS_FACTOR, ...recipe.transfer }] : [];
  const problems = [
    ...limitProblems(recipe, l),
    ...transfer.flatMap((t) => limitProblems(t, l).map((p) => `a transfer's ${p}`)),
    ...(recipe.rl ? rlLimitProblems(recipe.rl, l) : []),
  ];
  if (problems.length) throw new InvalidInputError(`${op}: line ${name}'s recipe is outside its limits: ${problems.join('; ')}`);
}

/** Lines, their data drops and evaluation suites. */
export class LinesRegistry extends RegistryCore {
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
    /** The limits set on the line (schemas/io.ts StoredLineLimits); those not set default from its recipe. */
    limits?: Json;
    scheduled?: boolean;
    actor: string;
  }): Promise<LineInfo> {
    const p = parseInput('ensureLine', EnsureLineInput, input);
    checkRunnable('ensureLine', p);
    checkWithinLimits('ensureLine', p.name, p.kind, p.recipe as Recipe, (p.limits ?? {}) as StoredLineLimits);
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
          limits: p.limits ?? {},
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
        return this.lineInfo(tx, existing);
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
          limits: p.limits ?? {},
          scheduled: p.scheduled ?? false,
        },
      });
      return this.lineInfo(tx, created);
    });
  }

  /** Replaces a line's model config, default recipe, gate rules, promotion policy, scheduling or upgrade policy (they are data); audited with the reason. */
  async updateLine(input: {
    name: string;
    modelConfig?: Json;
    recipe?: Json;
    gateRules?: Json;
    promotion?: Json;
    /** The limits set on the line (the whole set: those left out take their defaults). */
    limits?: Json;
    scheduled?: boolean;
    /** What a new stable foundation version does to this application line. */
    upgradePolicy?: 'auto' | 'manual' | 'off';
    actor: string;
    reason: string;
  }): Promise<LineInfo> {
    const p = parseInput('updateLine', UpdateLineInput, input);
    checkRunnable('updateLine', p);
    return this.db.transaction(async (tx) => {
      const before = await lineRow(tx, p.name, true);
      checkWithinLimits('updateLine', p.name, before.kind, (p.recipe ?? before.defaultRecipe) as Recipe, (p.limits ?? before.limits) as StoredLineLimits);
      const [after] = await tx
        .update(lines)
        .set({
          ...(p.modelConfig ? { modelConfig: p.modelConfig } : {}),
          ...(p.recipe ? { defaultRecipe: p.recipe } : {}),
          ...(p.gateRules ? { gateRules: p.gateRules } : {}),
          ...(p.promotion ? { promotion: p.promotion } : {}),
          ...(p.limits ? { limits: p.limits } : {}),
          ...(p.scheduled !== undefined ? { scheduled: p.scheduled } : {}),
          ...(p.upgradePolicy ? { upgradePolicy: p.upgradePolicy } : {}),
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
          ...(p.limits ? { limits: { from: before.limits, to: p.limits } } : {}),
          ...(p.scheduled !== undefined ? { scheduled: { from: before.scheduled, to: p.scheduled } } : {}),
          ...(p.upgradePolicy ? { upgradePolicy: { from: before.upgradePolicy, to: p.upgradePolicy } } : {}),
        },
      });
      return this.lineInfo(tx, after!);
    });
  }

  /**
   * Moves an application line onto another foundation line or model shape (a re-base, or an upgrade to a foundation
   * version of another shape): its foundation line and model shape become those of the version it now stands on,
   * so its next cycles continue from that model. Called once the transfer's version holds `stable`. Audited
   * (`line.rebase`) when anything changes; idempotent.
   */
  async adoptFoundation(input: { name: string; foundationLine: string; modelConfig: Json; actor: string; reason: string }): Promise<LineInfo> {
    return this.db.transaction(async (tx) => {
      const before = await lineRow(tx, input.name, true);
      if (before.kind !== 'application') throw new InvalidInputError(`${input.name} is a ${before.kind} line; only an application line stands on a foundation`);
      const foundation = await lineRow(tx, input.foundationLine);
      if (foundation.kind !== 'foundation') throw new InvalidInputError(`${input.foundationLine} is an ${foundation.kind} line, not a foundation line`);
      const sameShape = canonicalJson(before.modelConfig) === canonicalJson(input.modelConfig);
      if (before.foundationLineId === foundation.id && sameShape) return this.lineInfo(tx, before);
      const [after] = await tx
        .update(lines)
        .set({ foundationLineId: foundation.id, modelConfig: input.modelConfig, updatedAt: new Date() })
        .where(eq(lines.id, before.id))
        .returning();
      const [was] = before.foundationLineId === null ? [] : await tx.select({ name: lines.name }).from(lines).where(eq(lines.id, before.foundationLineId));
      await appendAuditEntry(tx, {
        actor: input.actor,
        action: 'line.rebase',
        subject: input.name,
        details: {
          reason: input.reason,
          foundationLine: { from: was?.name ?? null, to: input.foundationLine },
          ...(sameShape ? {} : { modelConfig: { from: before.modelConfig, to: input.modelConfig } }),
        },
      });
      return this.lineInfo(tx, after!);
    });
  }

  /** The line named `name`; throws NotFoundError when there is none. */
  async getLine(name: string): Promise<LineInfo> {
    return this.lineInfo(this.db, await lineRow(this.db, name));
  }

  /** Every line, by name. */
  async listLines(): Promise<LineInfo[]> {
    const rows = await this.db.select().from(lines).orderBy(asc(lines.name));
    const byId = new Map(rows.map((r) => [r.id, r.name]));
    return rows.map((r) => toLineInfo(r, r.foundationLineId === null ? null : (byId.get(r.foundationLineId) ?? null)));
  }

  protected async lineInfo(exec: Exec, row: typeof lines.$inferSelect): Promise<LineInfo> {
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
}
