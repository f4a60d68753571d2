/** `perennial lineage <line>@<version>`: drops -> training run -> version -> parents -> foundation -> releases -> applications. */
import type { Command } from 'commander';
import type { Lineage, TrainingRunInfo } from '../../registry/registry.ts';
import { openRegistry, output, UserError } from './context.ts';

const short = (digest: string) => digest.slice(0, 12);

/** Where a run took over from a checkpoint: a retry after a lost attempt, or a recipe-search trial's handed over. */
function resumedNote(checkpoints: TrainingRunInfo['checkpoints']): string {
  const at = checkpoints.find((c) => c.resumed);
  return at ? `; resumed at step ${at.step} from checkpoint ${short(at.digest)}` : '';
}

interface RlInterventionsJson {
  applied: { intervention: string; detail: string }[];
  refused: { intervention: string; reason: string }[];
}

/**
 * What the version's cycle did with plasticity interventions: an RL run says which it applied and which it refused
 * and why; a supervised cycle applies every one its recipe lists (activities/train.ts). null when none were asked.
 */
function interventionsNote(l: Lineage): string | null {
  const rl = l.rl?.recipe.interventions as RlInterventionsJson | undefined;
  if (rl) {
    const applied = rl.applied.map((a) => `${a.intervention} (${a.detail})`).join(', ');
    const refused = rl.refused.map((r) => `${r.intervention} (${r.reason})`).join(', ');
    return [applied && `applied ${applied}`, refused && `refused ${refused}`].filter(Boolean).join('; ');
  }
  const listed = (l.version.recipe as { interventions?: unknown }).interventions;
  return Array.isArray(listed) && listed.length ? `applied ${listed.join(', ')}` : null;
}

/** The lineage as the indented chain a person reads. */
export function formatLineage(l: Lineage): string {
  const v = l.version;
  const out: string[] = [];
  out.push(`${v.line}@${v.version}  (${l.kind} line, created ${v.createdAt.toISOString()})`);
  out.push(
    `  code ${v.codeRevision}, backend ${v.backend}, seed ${v.seed}; compute ${v.compute.tokens} tokens, ${v.compute.flops.toExponential(2)} flops, ${v.compute.wallMs} ms`,
  );
  out.push(`  manifest ${v.manifestDigest} (signed by key ${v.manifestKeyId.slice(0, 16)})`);
  for (const f of v.files) out.push(`    ${f.role.padEnd(8)} ${f.digest} ${f.size} bytes`);
  out.push('data drops');
  if (!l.drops.length) out.push('  (none)');
  for (const d of l.drops)
    out.push(
      `  ${short(d.digest)} ${d.source} ${d.status}, ${d.counts.records} records (${d.counts.train} train, ${d.counts.heldOut} held out), received ${d.receivedAt.toISOString()}`,
    );
  out.push('training run');
  const r = l.trainingRun;
  out.push(
    r
      ? `  ${r.key}: ${r.status}, ${r.steps} steps, ${r.tokens} tokens, final loss ${r.finalLoss ?? '-'}, from parent ${r.parentVersion ?? 'none'}` +
          resumedNote(r.checkpoints)
      : '  (none recorded)',
  );
  if (l.rl) out.push(`  RL run: ${r?.steps ?? l.rl.checks.at(-1)?.step ?? 0} steps, stopped by ${l.rl.stoppedBy}, final KL ${l.rl.finalKl.toFixed(4)}`);
  const interventions = interventionsNote(l);
  if (interventions) out.push(`  plasticity interventions: ${interventions}`);
  out.push('parents');
  if (!l.parents.length) out.push('  (none: trained from scratch or from its foundation)');
  for (const p of l.parents) out.push(`  ${p.version.line}@${p.version.version} <- drops ${p.drops.map((d) => short(d.digest)).join(', ') || '(none)'}`);
  if (l.parentsTruncated) out.push('  ... (more; raise --depth)');
  out.push(`foundation\n  ${l.foundation ? `${l.foundation.line}@${l.foundation.version}` : '(none)'}`);
  out.push('releases');
  if (!l.releases.length) out.push('  (never released)');
  for (const rel of l.releases) {
    out.push(
      `  ${rel.at.toISOString()} ${rel.line}@${rel.channel}: ${rel.fromVersion ?? 'none'} -> ${rel.toVersion ?? 'none'} (epoch ${rel.epoch}) by ${rel.actor}: ${rel.reason}` +
        (rel.gateDecisionId === null ? '' : ` [gate decision ${rel.gateDecisionId}]`),
    );
  }
  out.push('applications now');
  if (!l.applications.length) out.push('  (none runs it)');
  for (const a of l.applications)
    out.push(`  ${a.app} -> ${a.line}@${a.channel} (${a.policy})${a.via === 'foundation' ? ` runs ${a.runs.line}@${a.runs.version}, built on it` : ''}`);
  return out.join('\n');
}

export function register(program: Command) {
  program
    .command('lineage <ref>')
    .description('trace <line>@<version> (or <line>@<channel>): its drops, training run, parents, foundation, releases and the applications running it')
    .option('--depth <n>', 'how many parent versions to follow', '64')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: { depth: string; json?: boolean }) => {
      const m = /^([a-z][a-z0-9_-]{0,62})@([a-z0-9_-]+)$/.exec(ref);
      if (!m) throw new UserError(`expected <line>@<version> or <line>@<channel>, got "${ref}"`, 2);
      if (!/^\d+$/.test(o.depth)) throw new UserError(`--depth takes a whole number, got "${o.depth}"`, 2);
      const line = m[1]!;
      const { registry, close } = openRegistry();
      try {
        let version: number;
        if (/^\d+$/.test(m[2]!)) version = Number(m[2]);
        else {
          const channel = (await registry.getChannels(line)).find((c) => c.channel === m[2]);
          if (!channel) throw new UserError(`${line} has no channel ${m[2]}`);
          if (channel.version === null) throw new UserError(`${line}@${m[2]} is empty`);
          version = channel.version;
        }
        const lineage = await registry.lineage(line, version, { depth: Number(o.depth) });
        output(o.json, lineage, () => console.log(formatLineage(lineage)));
      } finally {
        await close();
      }
    });
}
