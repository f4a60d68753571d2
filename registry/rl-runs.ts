/** The registry's RL-runs module (migration 0007): each version an RL cycle trained, once, audited. The Registry facade composes it. */
import { and, asc, eq } from 'drizzle-orm';
import { rlRuns, versions } from '../schemas/db/index.ts';
import { InvalidInputError } from '../schemas/contracts/errors.ts';
import type { RlCheckPoint } from '../schemas/contracts/gate.ts';
import { appendAuditEntry } from './audit.ts';
import { DEFAULT_ACTOR, lineRow, versionRow } from './rows.ts';
import { TrialsRegistry } from './trials.ts';

/** One held-out check of an RL run (schemas/contracts/gate.ts). */
export type RlCheckInfo = RlCheckPoint;

export interface RlRunInput {
  line: string;
  version: number;
  /** sha256 digests of the feedback drops learned from. */
  feedbackDigests: string[];
  recipe: Record<string, unknown>;
  /** Reward statistics (e.g. held-out reward before/after, sampled reward mean). */
  rewardStats: Record<string, unknown>;
  checks: RlCheckInfo[];
  finalKl: number;
  stoppedBy: string;
  backend?: string;
  actor?: string;
}

export interface RlRunInfo extends Omit<RlRunInput, 'actor' | 'backend'> {
  backend: string | null;
  recordedAt: Date;
}

/** RL runs: recorded once per version (a retry keeps the first), read by the lineage, report and CLI. */
export class RlRunsRegistry extends TrialsRegistry {
  async recordRlRun(input: RlRunInput): Promise<RlRunInfo> {
    const subject = `${input.line}@${input.version}`;
    if (!input.feedbackDigests.length || !input.feedbackDigests.every((d) => /^[0-9a-f]{64}$/.test(d))) {
      throw new InvalidInputError(`RL run of ${subject}: feedbackDigests must be one or more sha256 hex digests`);
    }
    if (!Number.isFinite(input.finalKl) || input.finalKl < 0) throw new InvalidInputError(`RL run of ${subject}: finalKl must be a non-negative number`);
    if (!input.checks.every((c) => [c.step, c.reward, c.gold, c.kl].every(Number.isFinite) && (c.ratings === undefined || Number.isFinite(c.ratings)))) {
      throw new InvalidInputError(`RL run of ${subject}: every check needs finite step, reward, gold and kl (and ratings when present)`);
    }
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, input.line);
      const version = await versionRow(tx, line, input.version);
      const values = {
        versionId: version.id,
        feedbackDigests: input.feedbackDigests,
        recipe: input.recipe,
        rewardStats: input.rewardStats,
        checks: input.checks,
        finalKl: input.finalKl,
        stoppedBy: input.stoppedBy,
        backend: input.backend ?? null,
      };
      const inserted = await tx.insert(rlRuns).values(values).onConflictDoNothing().returning();
      if (inserted.length) {
        await appendAuditEntry(tx, {
          actor: input.actor ?? DEFAULT_ACTOR,
          action: 'rl.record',
          subject,
          details: {
            feedbackDigests: input.feedbackDigests,
            recipe: input.recipe,
            rewardStats: input.rewardStats,
            finalKl: input.finalKl,
            stoppedBy: input.stoppedBy,
          },
        });
      }
      const [row] = inserted.length ? inserted : await tx.select().from(rlRuns).where(eq(rlRuns.versionId, version.id));
      return toInfo(input.line, input.version, row!);
    });
  }

  /** RL runs of a line (or of one version), by version. */
  async getRlRuns(line: string, version?: number): Promise<RlRunInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ version: versions.number, run: rlRuns })
      .from(rlRuns)
      .innerJoin(versions, eq(versions.id, rlRuns.versionId))
      .where(and(eq(versions.lineId, l.id), version === undefined ? undefined : eq(versions.number, version)))
      .orderBy(asc(versions.number));
    return rows.map((r) => toInfo(line, r.version, r.run));
  }
}

function toInfo(line: string, version: number, row: typeof rlRuns.$inferSelect): RlRunInfo {
  return {
    line,
    version,
    feedbackDigests: row.feedbackDigests,
    recipe: row.recipe,
    rewardStats: row.rewardStats,
    checks: row.checks,
    finalKl: row.finalKl,
    stoppedBy: row.stoppedBy,
    backend: row.backend,
    recordedAt: row.createdAt,
  };
}
