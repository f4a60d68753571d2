/** The registry's evaluations module: evaluation results and gate decisions (and their audited overrides). The Registry facade composes it. */
import { and, asc, desc, eq } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import { evaluationSuites, evaluations, gateDecisions, lines, plasticityRecords, versions } from '../schemas/db/index.ts';
import { InvalidInputError, NotFoundError, RegistryConflictError } from '../schemas/contracts/errors.ts';
import { appendAuditEntry } from './audit.ts';
import { OverrideGateInput, RecordEvaluationInput, RecordGateDecisionInput, parseInput } from './inputs.ts';
import type { EvaluationInfo, GateDecisionInfo, Json, PlasticityInfo } from './types.ts';
import { DEFAULT_ACTOR, lineRow, toGateInfo, versionRow } from './rows.ts';
import { VersionsRegistry } from './versions.ts';

/** Evaluation results and gate decisions (and their audited overrides). */
export class EvaluationsRegistry extends VersionsRegistry {
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

  /**
   * Records a version's plasticity record (model/plasticity.ts) once: a second call for the same version keeps
   * and returns the first (a measurement is a fact; an activity retry must not change it). Audited once.
   */
  async recordPlasticity(input: { line: string; version: number; record: Json; backend?: string; actor?: string }): Promise<PlasticityInfo> {
    if (typeof input.record !== 'object' || input.record === null || Array.isArray(input.record)) {
      throw new InvalidInputError(`plasticity record of ${input.line}@${input.version} is not an object`);
    }
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, input.line);
      const version = await versionRow(tx, line, input.version);
      const inserted = await tx
        .insert(plasticityRecords)
        .values({ versionId: version.id, record: input.record as Record<string, unknown>, backend: input.backend ?? null })
        .onConflictDoNothing()
        .returning();
      if (inserted.length) {
        await appendAuditEntry(tx, {
          actor: input.actor ?? DEFAULT_ACTOR,
          action: 'plasticity.record',
          subject: `${input.line}@${input.version}`,
          details: { record: input.record, backend: input.backend ?? null },
        });
      }
      const [row] = inserted.length ? inserted : await tx.select().from(plasticityRecords).where(eq(plasticityRecords.versionId, version.id));
      return { line: input.line, version: input.version, record: row!.record, backend: row!.backend, measuredAt: row!.createdAt };
    });
  }

  /** Plasticity records of a line (or of one version), by version. */
  async getPlasticity(line: string, version?: number): Promise<PlasticityInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ version: versions.number, record: plasticityRecords.record, backend: plasticityRecords.backend, measuredAt: plasticityRecords.createdAt })
      .from(plasticityRecords)
      .innerJoin(versions, eq(versions.id, plasticityRecords.versionId))
      .where(and(eq(versions.lineId, l.id), version === undefined ? undefined : eq(versions.number, version)))
      .orderBy(asc(versions.number));
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
}
