/** The registry's lineage module: lineage: where a version came from and where it went, in one query. The Registry facade composes it. */
import { and, desc, sql } from 'drizzle-orm';
import { applications, channels, lines, releases, versions } from '../schemas/db/index.ts';
import { NotFoundError } from '../schemas/contracts/errors.ts';
import { queryPrepared } from './db.ts';
import { Count, parseInput } from './inputs.ts';
import { sortFiles } from './manifest.ts';
import type { Lineage, TrainingRunInfo } from './types.ts';
import type { RlRunInfo } from './rl-runs.ts';
import { type LineageJson, dropFromJson, dropsJson, lineRow, versionFromJson, versionJson } from './rows.ts';
import { ReleasesRegistry } from './releases.ts';

type RlRunJson = Omit<RlRunInfo, 'line' | 'version' | 'recordedAt'> & { recordedAt: string };

/** Lineage: where a version came from and where it went, in one query. */
export class LineageRegistry extends ReleasesRegistry {
  /**
   * The chain behind and after a version: drops -> training run -> version -> parents -> foundation version
   * -> releases -> applications running it now. `depth` bounds how many parents are followed.
   */
  async lineage(line: string, version: number, opts: { depth?: number } = {}): Promise<Lineage> {
    const depth = parseInput('lineage depth', Count, opts.depth ?? 64);
    // One query, one JSON document: a lineage touches eight tables, and building and mapping eight
    // Drizzle queries cost more than the database's work. The parent walk is a recursive CTE over
    // (line_id, number), one index probe per step, fetching one parent beyond `depth` to tell truncation.
    const result = await queryPrepared<{ lineage: LineageJson & { rl?: RlRunJson | null } }>(
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
            'startedAt', r.started_at, 'finishedAt', r.finished_at, 'checkpoints', r.checkpoints,
            'drops', coalesce((select json_agg(d.digest order by d.id) from training_run_drops rd join data_drops d on d.id = rd.drop_id where rd.run_id = r.id), '[]'))
          from training_runs r where r.version_id = t.id),
        'parents', coalesce((
          select json_agg(json_build_object('version', ${versionJson(sql`v`, line)}, 'drops', ${dropsJson(sql`v.id`)}) order by v.number desc)
          from chain c join versions v on v.line_id = t.line_id and v.number = c.number), '[]'),
        'foundation', (select ${versionJson(sql`fv`)} from versions fv where fv.id = t.foundation_version_id),
        'plasticity', (select p.record from plasticity_records p where p.version_id = t.id),
        'rl', (select json_build_object(
            'feedbackDigests', x.feedback_digests, 'recipe', x.recipe, 'rewardStats', x.reward_stats, 'checks', x.checks,
            'finalKl', x.final_kl, 'stoppedBy', x.stopped_by, 'backend', x.backend, 'recordedAt', x.created_at)
          from rl_runs x where x.version_id = t.id),
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
      ...(doc.plasticity ? { plasticity: doc.plasticity } : {}),
      ...(doc.rl ? { rl: { ...doc.rl, recordedAt: new Date(doc.rl.recordedAt) } } : {}),
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
