/** `perennial versions <line>`: every version with its parent, channels, gate verdict and compute. */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { openRegistry, output } from './context.ts';

export function register(program: Command) {
  program
    .command('versions <line>')
    .description("list a line's versions with their lineage, channels and gate verdicts")
    .option('--json', 'print JSON')
    .action(async (line: string, o) => {
      parseCliArgs(CliArgs.line, { line }, { line: '<line>' });
      const { registry, close } = openRegistry();
      try {
        await registry.getLine(line);
        const [versions, channels] = await Promise.all([registry.listVersions(line), registry.getChannels(line)]);
        const rows = await Promise.all(
          versions.map(async (v) => {
            const gate = await registry.getGateDecisionFor(line, v.version);
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
            };
          }),
        );
        output(o.json, rows, () => {
          if (!rows.length) return console.log(`${line} has no versions yet`);
          console.log(
            ['version', 'parent', 'foundation', 'verdict', 'channels', 'created', 'weights'].map((h, i) => h.padEnd([8, 7, 12, 10, 24, 25, 14][i]!)).join(''),
          );
          for (const r of rows) {
            console.log(
              [
                String(r.version),
                r.parent ? String(r.parent) : '-',
                r.foundation ?? '-',
                r.verdict ?? '-',
                r.channels.join(',') || '-',
                new Date(r.createdAt).toISOString(),
                r.weightsDigest.slice(0, 12),
              ]
                .map((c, i) => c.padEnd([8, 7, 12, 10, 24, 25, 14][i]!))
                .join(''),
            );
          }
        });
      } finally {
        await close();
      }
    });
}
