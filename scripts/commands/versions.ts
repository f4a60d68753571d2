/**
 * `perennial versions <line>`: every version with its parent, channels, gate verdict and compute; with
 * `--metrics` (and always in `--json`) each suite's measurements and the gate's bound for it.
 */
import type { Command } from 'commander';
import type { SuiteVerdict } from '../../workflows/gate.ts';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { openRegistry, output } from './context.ts';
import { rlRunJson, rlRunSummary } from './rl-status.ts';

export function register(program: Command) {
  program
    .command('versions <line>')
    .description("list a line's versions with their lineage, channels and gate verdicts")
    .option('--metrics', "also print each version's per-suite metrics with the gate's bound and verdict for each")
    .option('--json', 'print JSON (always with the metrics and gate bounds)')
    .action(async (line: string, o) => {
      parseCliArgs(CliArgs.line, { line }, { line: '<line>' });
      const { registry, close } = openRegistry();
      try {
        await registry.getLine(line);
        const [versions, channels, evaluations, plasticity, rlRuns] = await Promise.all([
          registry.listVersions(line),
          registry.getChannels(line),
          registry.getEvaluations(line),
          registry.getPlasticity(line),
          registry.getRlRuns(line),
        ]);
        const rows = await Promise.all(
          versions.map(async (v) => {
            const gate = await registry.getGateDecisionFor(line, v.version);
            // The latest measurement of each suite on this version (re-evaluations add newer ones).
            const metrics: Record<string, { kind: string; suiteLine: string; evaluatedAt: Date } & Record<string, unknown>> = {};
            for (const e of [...evaluations].filter((e) => e.version === v.version).sort((a, b) => a.evaluatedAt.getTime() - b.evaluatedAt.getTime()))
              metrics[e.suite] = { ...(e.metrics as Record<string, unknown>), kind: e.kind, suiteLine: e.suiteLine, evaluatedAt: e.evaluatedAt };
            return {
              version: v.version,
              parent: v.parentVersion ?? null,
              foundation: v.foundationVersion ? `${v.foundationVersion.line}@${v.foundationVersion.version}` : null,
              channels: channels.filter((c) => c.version === v.version).map((c) => c.channel),
              verdict: gate ? (gate.override ? `${gate.verdict} (overridden by ${gate.override.actor})` : gate.verdict) : null,
              createdAt: v.createdAt,
              weightsDigest: v.weightsDigest,
              backend: v.backend,
              compute: v.compute,
              metrics,
              // The plasticity record (ratio against a fresh model, dormant units, norms, rank), when measured.
              plasticity: plasticity.find((p) => p.version === v.version)?.record ?? null,
              // The RL run of a feedback cycle (reward, gold and KL per check, what stopped it), when it was one.
              rl: rlRunJson(rlRuns.find((r) => r.version === v.version)),
              gate: gate
                ? {
                    id: gate.id,
                    verdict: gate.verdict,
                    champion: gate.champion,
                    summary: gate.summary,
                    override: gate.override,
                    suites: gate.suites as SuiteVerdict[],
                  }
                : null,
            };
          }),
        );
        output(o.json, rows, () => {
          if (!rows.length) return console.log(`${line} has no versions yet`);
          const table = [
            ['version', 'parent', 'foundation', 'verdict', 'channels', 'created', 'weights'],
            ...rows.map((r) => [
              String(r.version),
              r.parent ? String(r.parent) : '-',
              r.foundation ?? '-',
              r.verdict ?? '-',
              r.channels.join(',') || '-',
              new Date(r.createdAt).toISOString(),
              r.weightsDigest.slice(0, 12),
            ]),
          ];
          // Each column as wide as its widest cell ("fail (overridden by ops)" included), plus a gap.
          const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)) + 2);
          for (const row of table)
            console.log(
              row
                .map((c, i) => c.padEnd(widths[i]!))
                .join('')
                .trimEnd(),
            );
          if (o.metrics) for (const r of rows) console.log(`\n${formatMetrics(line, r)}${r.rl ? `\n  rl: ${rlRunSummary(r.rl)}` : ''}`);
        });
      } finally {
        await close();
      }
    });
}

const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(4)) : '-');

/**
 * One version's numbers: each suite's loss, perplexity and exact match, and for the suites its gate judged,
 * the metric it judged, the champion's value, the bound the candidate had to meet and the verdict.
 */
export function formatMetrics(
  line: string,
  r: {
    version: number;
    metrics: Record<string, Record<string, unknown>>;
    gate: {
      verdict: string;
      champion: number | null;
      summary: string | null;
      override: { actor: string; reason: string } | null;
      suites: SuiteVerdict[];
    } | null;
  },
): string {
  const g = r.gate;
  const head = g
    ? `${line}@${r.version}: gate ${g.verdict}${g.champion ? ` against ${line}@${g.champion}` : ' (no champion)'}${g.summary ? `: ${g.summary}` : ''}` +
      (g.override ? `; overridden by ${g.override.actor}: ${g.override.reason}` : '')
    : `${line}@${r.version}: never gated`;
  const suites = [...new Set([...Object.keys(r.metrics), ...(g?.suites ?? []).map((s) => s.suite)])];
  const widths = [Math.max(12, ...suites.map((s) => s.length + 13)), 10, 11, 9, 11, 10, 10, 6];
  const row = (cells: string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join('')}`.trimEnd();
  const out = [head, row(['suite', 'loss', 'perplexity', 'exact', 'judged on', 'champion', 'bound', 'pass'])];
  if (!suites.length) out.push('  (no evaluations)');
  for (const suite of suites) {
    const m = r.metrics[suite] ?? {};
    const v = g?.suites.find((s) => s.suite === suite);
    out.push(
      row([
        suite + (m.evidence ? ' (evidence)' : ''),
        num(m.loss),
        num(m.perplexity),
        num(m.exactMatch),
        v?.metric ?? '-',
        num(v?.champion),
        num(v?.bound),
        v ? (v.pass ? 'yes' : 'NO') : '-',
      ]),
    );
  }
  return out.join('\n');
}
