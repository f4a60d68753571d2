/** The registry's verification module: verification of stored artifacts: files, manifests and signatures, drops and checkpoints, ancestry. The Registry facade composes it. */
import { and, asc, eq, gt } from 'drizzle-orm';
import { dataDrops, lines, trainingRuns, versionDrops, versionFiles, versions } from '../schemas/db/index.ts';
import { ArtifactIntegrityError, NotFoundError } from '../schemas/contracts/errors.ts';
import type { ObjectCheck } from './artifacts.ts';
import { VersionNumber, parseInput } from './inputs.ts';
import { openManifest } from './manifest.ts';
import type { ArtifactProblem, ArtifactVerification, Lineage } from './types.ts';
import type { VersionRow } from './rows.ts';
import { LineageRegistry } from './lineage.ts';

/** Verification of stored artifacts: files, manifests and signatures, drops and checkpoints, ancestry. */
export class VerificationRegistry extends LineageRegistry {
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
      const rows = await this.versionQuery()
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
        problems.push(...(await this.verifyVersion(row, check)));
      }
    }
    if (version !== undefined && checked === 0) throw new NotFoundError(`version ${line}@${version}`);
    if (line !== undefined && version !== undefined) problems.push(...(await this.verifyAncestry(line, version, check)));
    return { ok: problems.length === 0, checked, files: checks.size, problems };
  }

  /** The drops of a version's parents and foundation (replayed into its training), named under the version. */
  protected async verifyAncestry(line: string, version: number, check: (digest: string, size?: number) => Promise<ObjectCheck>): Promise<ArtifactProblem[]> {
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

  protected async verifyVersion(row: VersionRow, check: (digest: string, size?: number) => Promise<ObjectCheck>): Promise<ArtifactProblem[]> {
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
}
