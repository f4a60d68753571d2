/** The registry's training module: training runs: started once per key, finished once with their checkpoint and version. The Registry facade composes it. */
import { asc, eq } from 'drizzle-orm';
import { dataDrops, lines, trainingRunDrops, trainingRuns, versions } from '../schemas/db/index.ts';
import { NotFoundError, RegistryConflictError } from '../schemas/contracts/errors.ts';
import { appendAuditEntry } from './audit.ts';
import { prepared } from './db.ts';
import { FinishTrainingRunInput, StartTrainingRunInput, parseInput } from './inputs.ts';
import type { Json, TrainingRunInfo } from './types.ts';
import { DEFAULT_ACTOR, type Exec, acceptedDrops, lineRow, toRunInfo, versionRow } from './rows.ts';
import { LinesRegistry } from './lines.ts';

/** Training runs: started once per key, finished once with their checkpoint and version. */
export class TrainingRegistry extends LinesRegistry {
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
        return this.runInfo(tx, existing, p.line);
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
        return this.runInfo(tx, raced!, p.line);
      }
      if (drops.length) await tx.insert(trainingRunDrops).values(drops.map((d) => ({ runId: created.id, dropId: d.id })));
      await appendAuditEntry(tx, {
        actor: p.actor ?? DEFAULT_ACTOR,
        action: 'training.start',
        subject: `${p.line}/run/${p.key}`,
        details: { parent: p.parentVersion, recipe: p.recipe, seed: p.seed, drops: drops.map((d) => d.digest) },
      });
      return this.runInfo(tx, created, p.line);
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
      /** `resumed`: the checkpoint this run started from (a retry's, or a search trial's handed over). */
      checkpoints?: { digest: string; step: number; resumed?: true }[];
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
        if (run.status === p.status) return this.runInfo(tx, run, line!.name);
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
      return this.runInfo(tx, updated!, line!.name);
    });
  }

  /** The training run with this key, or null. */
  async getTrainingRun(key: string): Promise<TrainingRunInfo | null> {
    const [row] = await this.db
      .select({ run: trainingRuns, line: lines.name })
      .from(trainingRuns)
      .innerJoin(lines, eq(lines.id, trainingRuns.lineId))
      .where(eq(trainingRuns.key, key));
    return row ? this.runInfo(this.db, row.run, row.line) : null;
  }

  protected async runInfo(exec: Exec, run: typeof trainingRuns.$inferSelect, line: string): Promise<TrainingRunInfo> {
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
}
