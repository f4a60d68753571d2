/** The registry's trials module (issue 15): every trial of a cycle's recipe search, and the warm-start query. The Registry facade composes it. */
import { and, asc, desc, eq, ne, sql, type SQL } from 'drizzle-orm';
import { lines, recipeTrials, trainingRuns, versions } from '../schemas/db/index.ts';
import { appendAuditEntry } from './audit.ts';
import { DEFAULT_ACTOR, lineRow } from './rows.ts';
import { VerificationRegistry } from './verification.ts';

/** A recipe a search chose, with the features of its drop and its gate margin (a warm start). */
export interface ChosenRecipe {
  recipe: Record<string, unknown>;
  features: Record<string, unknown>;
  margin: number | null;
}

/** One trial segment as the search reports it (domain/recipe-search.ts TrialRecord, plus what the cycle knows). */
export interface TrialInput {
  trial: string;
  rung: number;
  bracket: number;
  source: string;
  recipe: Record<string, unknown>;
  fromStep: number;
  toStep: number;
  flops: number;
  wallMs: number;
  metrics: Record<string, unknown>;
  margin: number | null;
  pass: boolean;
  status: 'chosen' | 'passed' | 'kept' | 'pruned' | 'failed' | 'rejected';
  summary: string;
}

export interface TrialInfo extends TrialInput {
  line: string;
  cycleKey: string;
  cycleId: string;
  dropDigest: string | null;
  features: Record<string, unknown>;
  /** The version the cycle made (through its training run), when it made one. */
  version: number | null;
  createdAt: string;
}

/** Recipe trials: recorded once per (cycle, trial, rung), read per line, cycle or version, and as warm starts. */
export class TrialsRegistry extends VerificationRegistry {
  /** Records a search's trial segments; idempotent by (cycle key, trial, rung): a retried call writes nothing twice. Audited once. */
  async recordTrials(input: {
    line: string;
    cycleKey: string;
    cycleId: string;
    dropDigest: string | null;
    features: Record<string, unknown>;
    trials: TrialInput[];
    actor?: string;
  }): Promise<{ recorded: number }> {
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, input.line);
      if (!input.trials.length) return { recorded: 0 };
      const rows = await tx
        .insert(recipeTrials)
        .values(
          input.trials.map((t) => ({
            lineId: line.id,
            cycleKey: input.cycleKey,
            cycleId: input.cycleId,
            dropDigest: input.dropDigest,
            features: input.features,
            ...t,
            wallMs: Math.round(t.wallMs),
            margin: t.margin !== null && Number.isFinite(t.margin) ? t.margin : null,
          })),
        )
        .onConflictDoNothing()
        .returning({ id: recipeTrials.id });
      if (rows.length)
        await appendAuditEntry(tx, {
          actor: input.actor ?? DEFAULT_ACTOR,
          action: 'recipe.search',
          subject: `${input.line}/search/${input.cycleKey}`,
          details: {
            trials: input.trials.length,
            flops: input.trials.reduce((a, t) => a + t.flops, 0),
            chosen: input.trials.find((t) => t.status === 'chosen')?.recipe ?? null,
          },
        });
      return { recorded: rows.length };
    });
  }

  /** The trials of a line (or of one cycle key), oldest first, each with the version its cycle made. */
  async listTrials(line: string, opts: { cycleKey?: string; version?: number } = {}): Promise<TrialInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ t: recipeTrials, version: versions.number })
      .from(recipeTrials)
      .leftJoin(trainingRuns, eq(trainingRuns.key, recipeTrials.cycleKey))
      .leftJoin(versions, eq(versions.id, trainingRuns.versionId))
      .where(
        and(
          eq(recipeTrials.lineId, l.id),
          opts.cycleKey ? eq(recipeTrials.cycleKey, opts.cycleKey) : undefined,
          opts.version !== undefined ? eq(versions.number, opts.version) : undefined,
        ),
      )
      .orderBy(asc(recipeTrials.id));
    return rows.map(({ t, version }) => ({
      line,
      cycleKey: t.cycleKey,
      cycleId: t.cycleId,
      dropDigest: t.dropDigest,
      features: t.features,
      trial: t.trial,
      rung: t.rung,
      bracket: t.bracket,
      source: t.source,
      recipe: t.recipe,
      fromStep: t.fromStep,
      toStep: t.toStep,
      flops: t.flops,
      wallMs: t.wallMs,
      metrics: t.metrics,
      margin: t.margin,
      pass: t.pass,
      status: t.status,
      summary: t.summary,
      version: version ?? null,
      createdAt: t.createdAt.toISOString(),
    }));
  }

  /** The recipes chosen by this line's earlier searches, newest first, with the features of their drops (the warm start). */
  async chosenRecipes(line: string, limit = 20): Promise<ChosenRecipe[]> {
    const [l] = await this.db.select({ id: lines.id }).from(lines).where(eq(lines.name, line));
    if (!l) return [];
    return (await this.chosenWhere(eq(lines.id, l.id), limit)).map(({ line: _line, ...h }) => h);
  }

  /**
   * The recipes chosen on the other lines of this line's foundation line (or the other foundation lines) and model
   * shape, newest first, each with its line: where a line with no search of its own starts (a new application line
   * beside others on the same foundation).
   */
  async chosenRecipesElsewhere(line: string, limit = 20): Promise<(ChosenRecipe & { line: string })[]> {
    const [l] = await this.db
      .select({ id: lines.id, foundationLineId: lines.foundationLineId, modelConfig: lines.modelConfig })
      .from(lines)
      .where(eq(lines.name, line));
    if (!l) return [];
    return this.chosenWhere(
      and(
        ne(lines.id, l.id),
        // The same foundation line (none, for foundation lines): so also the same kind.
        sql`${lines.foundationLineId} is not distinct from ${l.foundationLineId}::bigint`,
        // jsonb equality: the same shape whatever the key order it was stored in.
        sql`${lines.modelConfig} = ${JSON.stringify(l.modelConfig)}::jsonb`,
      )!,
      limit,
    );
  }

  /**
   * The trials of this line that passed at their horizon (the newest `limit`), each with the recipe and every
   * judged segment (step and margin): what the line's passing updates looked like on their way, for the search's
   * early stop. Newest first.
   */
  async passedTrials(
    line: string,
    limit = 50,
  ): Promise<{ recipe: Record<string, unknown>; segments: { toStep: number; margin: number | null; pass: boolean }[] }[]> {
    const [l] = await this.db.select({ id: lines.id }).from(lines).where(eq(lines.name, line));
    if (!l) return [];
    const passed = this.db
      .select({ cycleKey: recipeTrials.cycleKey, trial: recipeTrials.trial, id: recipeTrials.id })
      .from(recipeTrials)
      .where(and(eq(recipeTrials.lineId, l.id), eq(recipeTrials.pass, true), sql`${recipeTrials.toStep} >= (${recipeTrials.recipe}->>'steps')::int`))
      .orderBy(desc(recipeTrials.id))
      .limit(limit)
      .as('passed');
    const rows = await this.db
      .select({ key: passed.id, recipe: recipeTrials.recipe, toStep: recipeTrials.toStep, margin: recipeTrials.margin, pass: recipeTrials.pass })
      .from(recipeTrials)
      .innerJoin(passed, and(eq(passed.cycleKey, recipeTrials.cycleKey), eq(passed.trial, recipeTrials.trial)))
      .where(eq(recipeTrials.lineId, l.id))
      .orderBy(desc(passed.id), asc(recipeTrials.toStep));
    const byTrial = new Map<number, { recipe: Record<string, unknown>; segments: { toStep: number; margin: number | null; pass: boolean }[] }>();
    for (const r of rows) {
      const t = byTrial.get(r.key) ?? { recipe: r.recipe, segments: [] };
      t.segments.push({ toStep: r.toStep, margin: r.margin, pass: r.pass });
      byTrial.set(r.key, t);
    }
    return [...byTrial.values()];
  }

  /** Chosen trials of the lines `which` selects, newest first. */
  private chosenWhere(which: SQL, limit: number) {
    return this.db
      .select({ line: lines.name, recipe: recipeTrials.recipe, features: recipeTrials.features, margin: recipeTrials.margin })
      .from(recipeTrials)
      .innerJoin(lines, eq(lines.id, recipeTrials.lineId))
      .where(and(eq(recipeTrials.status, 'chosen'), which))
      .orderBy(desc(recipeTrials.id))
      .limit(limit);
  }
}
