/** `perennial upgrade`: move an application line onto a new foundation version by capability transfer. */
import type { Command } from 'commander';
import { planUpgrade } from '../../registry/upgrades.ts';
import { startUpgrade, upgradeResult } from '../../client/upgrades.ts';
import { openClient, openRegistry, output, UserError } from './context.ts';

export function register(program: Command) {
  program
    .command('upgrade <line>')
    .description(
      "move an application line onto a stable foundation version, of its own foundation line or another (a re-base): distil its stable model into the new base, gate, release",
    )
    .requiredOption('--to <foundation@version>', 'the foundation version, e.g. base@2 or base-v2@1 (it must be the stable version of a foundation line)')
    .option('--wait', 'wait for the transfer and print its outcome')
    .option('--json', 'print JSON')
    .action(async (line: string, o) => {
      const m = /^([a-z0-9][a-z0-9-]*)@(\d+)$/.exec(String(o.to));
      if (!m) throw new UserError(`--to takes <foundation>@<version>, e.g. base@2; got ${JSON.stringify(o.to)}`, 2);
      const foundation = m[1]!;
      const version = Number(m[2]);
      // Checked before anything starts; the workflow's first step checks the same again.
      const reg = openRegistry();
      try {
        await reg.registry.getLine(line).catch(() => {
          throw new UserError(`line ${line} does not exist`);
        });
        await planUpgrade(reg.registry, { foundation, version, lines: [line] }).catch((err: Error) => {
          throw new UserError(err.message);
        });
      } finally {
        await reg.close();
      }
      const { client, target, close } = await openClient();
      try {
        const t = { client, taskQueue: target.taskQueue };
        const workflowId = await startUpgrade(t, { foundation, version, lines: [line] });
        if (!o.wait) return output(o.json, { workflowId }, () => console.log(`upgrade started: ${workflowId}`));
        const result = await upgradeResult(t, workflowId);
        output(o.json, result, () => {
          for (const d of result.done) console.log(`${d.line}: ${d.verdict}${d.version !== undefined ? ` (${d.line}@${d.version})` : ''}: ${d.reason}`);
        });
        if (result.done.some((d) => d.verdict !== 'promoted')) process.exitCode = 1;
      } finally {
        await close();
      }
    });
}
