/** Human actions on releases: rollback, approve / reject (with --override for a failed gate), regression reports. */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { overrideGate, reportRegression, review, rollback } from '../../client/ops.ts';
import { describeUpgradeStart } from '../../client/upgrades.ts';
import { rollbackRefusal } from '../../activities/release.ts';
import { openClient, openRegistry, output, readableFile, UserError } from './context.ts';

const defaultActor = process.env.USER ?? 'operator';

export function register(program: Command) {
  program
    .command('rollback <line>')
    .description("move a line's stable channel (or --channel) back to an earlier version; recorded with its reason")
    .requiredOption('--to <version>', 'the version to serve again')
    .requiredOption('--reason <text>', 'why (kept in the release history and the audit log)')
    .option('--channel <name>', 'the channel to move', 'stable')
    .option('--override', 'the version failed its gate (or was never gated): release it anyway; recorded with --reason and --actor')
    .option('--actor <name>', 'who rolls back', defaultActor)
    .option('--json', 'print JSON')
    .action(async (line: string, o) => {
      const { line: _, ...req } = parseCliArgs(
        CliArgs.rollback,
        { line, to: o.to, reason: o.reason, actor: o.actor, channel: o.channel, override: o.override === true ? true : undefined },
        { line: '<line>' },
      );
      // Asked of the registry first, so a refusal is answered before anything is started; the rollback
      // activity checks the same again (it is the authority) and its refusal reaches the user the same way.
      const reg = openRegistry();
      let overriding = false;
      try {
        await reg.registry.getLine(line).catch(() => {
          throw new UserError(`line ${line} does not exist`);
        });
        const refused = await rollbackRefusal(reg.registry, line, req.to, req.override === true);
        if (refused) throw new UserError(refused.refusal);
        overriding = req.override === true && (await rollbackRefusal(reg.registry, line, req.to, false)) !== null;
      } finally {
        await reg.close();
      }
      const { client, target, close } = await openClient();
      try {
        const move = await rollback({ client, taskQueue: target.taskQueue }, line, req);
        output(o.json, { ...move, override: overriding ? { actor: req.actor, reason: req.reason } : null }, () => {
          if (overriding) console.log(`gate override recorded for ${line}@${move.to} by ${req.actor}: ${req.reason}`);
          console.log(`${line}@${move.channel}: ${move.from ?? 'none'} -> ${move.to} (epoch ${move.epoch}, release ${move.releaseId})`);
          for (const l of move.upgrade ? describeUpgradeStart(move.upgrade) : []) console.log(l);
        });
      } finally {
        await close();
      }
    });

  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(`${decision} <line> <version>`)
      .description(
        decision === 'approve' ? 'approve the version a cycle waits on for stable (or --override a failed gate)' : 'reject the version a cycle waits on',
      )
      .option('--actor <name>', 'who decides', defaultActor)
      .option('--reason <text>', 'why')
      .option('--override', decision === 'approve' ? 'promote a version whose gate failed (needs --reason; audited)' : 'not used by reject')
      .option('--json', 'print JSON')
      .action(async (line: string, version: string, o) => {
        const { line: _, ...req } = parseCliArgs(CliArgs.review, { line, version, actor: o.actor, reason: o.reason }, { line: '<line>', version: '<version>' });
        if (o.override && decision !== 'approve') throw new UserError('--override goes with approve', 2);
        if (o.override && !req.reason) throw new UserError('overriding a failed gate needs --reason', 2);
        const { client, target, close } = await openClient();
        try {
          if (o.override) {
            const move = await overrideGate({ client, taskQueue: target.taskQueue }, line, { ...req, reason: req.reason! });
            return output(o.json, move, () => {
              console.log(`override recorded; ${line}@stable: ${move.from ?? 'none'} -> ${move.to} by ${req.actor}`);
              for (const l of move.upgrade ? describeUpgradeStart(move.upgrade) : []) console.log(l);
            });
          }
          const result = await review(client, line, decision, req);
          output(o.json, result, () => console.log(`${decision === 'approve' ? 'approved' : 'rejected'} ${line}@${req.version} as ${req.actor}`));
        } finally {
          await close();
        }
      });
  }

  program
    .command('report-regression <line>')
    .description("report a regression of the line's canary; the loop re-evaluates and rolls back when confirmed")
    .requiredOption('--reason <text>', 'what was seen')
    .option('--evidence <file>', 'a drop file (text or probes) that shows the regression')
    .option('--actor <name>', 'who reports', defaultActor)
    .option('--json', 'print JSON')
    .action(async (line: string, o) => {
      const { line: _, ...req } = parseCliArgs(CliArgs.reportRegression, { line, reason: o.reason, actor: o.actor, evidence: o.evidence }, { line: '<line>' });
      if (req.evidence) readableFile(req.evidence, '--evidence');
      const { client, close } = await openClient();
      try {
        const ack = await reportRegression(client, line, req);
        output(o.json, ack, () => console.log(`report accepted by ${ack.cycleId} for ${line}@${ack.version}; it re-evaluates now`));
      } finally {
        await close();
      }
    });
}
