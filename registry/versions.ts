/** The registry's versions module: versions: numbered, signed manifests of stored files, with their drops and parents. The Registry facade composes it. */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import { dataDrops, lines, trainingRuns, versionDrops, versionFiles, versions } from '../schemas/db/index.ts';
import { InvalidInputError, NotFoundError, RegistryConflictError } from '../schemas/contracts/errors.ts';
import { appendAuditEntry } from './audit.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';
import { prepared } from './db.ts';
import { CreateVersionInput, parseInput } from './inputs.ts';
import { type Manifest, type ManifestFile, signManifest, sortFiles } from './manifest.ts';
import type { VersionInfo, VersionSummary } from './types.ts';
import { DEFAULT_ACTOR, type Exec, type VersionRow, acceptedDrops, foundationVersionOf, toVersionSummary, versionRow } from './rows.ts';
import { TrainingRegistry } from './training.ts';

/** Versions: numbered, signed manifests of stored files, with their drops and parents. */
export class VersionsRegistry extends TrainingRegistry {
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
    const [row] = await this.versionQuery().where(and(eq(lines.name, line), eq(versions.number, n)));
    if (!row) throw new NotFoundError(`version ${line}@${n}`);
    return this.versionInfo(this.db, row);
  }

  /** The versions of a line in number order (without file lists); `after` pages. */
  async listVersions(line: string, opts: { after?: number; limit?: number } = {}): Promise<VersionSummary[]> {
    const rows = await this.versionQuery()
      .where(and(eq(lines.name, line), gt(versions.number, opts.after ?? 0)))
      .orderBy(asc(versions.number))
      .limit(opts.limit ?? 1_000_000);
    return rows.map(toVersionSummary);
  }

  protected versionQuery() {
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

  protected async versionInfo(exec: Exec, row: VersionRow): Promise<VersionInfo> {
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
}
