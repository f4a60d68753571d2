/** `perennial app bind|list`: applications bound to line@channel with an upgrade policy. */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { openRegistry, output, UserError } from './context.ts';

export function register(program: Command) {
  const app = program.command('app').description('bind applications to release channels');
  app
    .command('bind <app> <target>')
    .description("bind an application to <line>@<channel>; follow moves with the channel, hold stays on today's version")
    .option('--policy <policy>', 'follow or hold', 'follow')
    .option('--actor <name>', 'who binds it', process.env.USER ?? 'operator')
    .option('--json', 'print JSON')
    .action(async (name: string, targetRef: string, o) => {
      const args = parseCliArgs(CliArgs.appBind, { app: name, target: targetRef, policy: o.policy, actor: o.actor }, { app: '<app>', target: '<target>' });
      const { line, channel } = args.target;
      const { registry, close } = openRegistry();
      try {
        // `hold` pins the version the channel serves now; `follow` moves with the channel.
        let pinnedVersion: number | undefined;
        if (o.policy === 'hold') {
          const current = (await registry.getChannels(line)).find((c) => c.channel === channel)?.version;
          if (!current) throw new UserError(`${line}@${channel} serves no version yet, so there is nothing to hold; bind with --policy follow`);
          pinnedVersion = current;
        }
        const bound = await registry.bindApplication({
          pinnedVersion,
          app: args.app,
          line,
          channel,
          policy: args.policy,
          actor: args.actor,
        });
        output(o.json, bound, () => console.log(`${name} -> ${line}@${channel} (${o.policy})`));
      } finally {
        await close();
      }
    });
  app
    .command('list')
    .description('list applications and the version each resolves to now')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const { registry, close } = openRegistry();
      try {
        const apps = await registry.listApplications();
        output(o.json, apps, () => {
          if (!apps.length) console.log('no applications bound: perennial app bind <app> <line>@<channel>');
          for (const a of apps)
            console.log(`${a.app.padEnd(20)} ${`${a.line}@${a.channel}`.padEnd(24)} ${a.policy.padEnd(7)} -> ${a.resolvedVersion ?? 'none'}`);
        });
      } finally {
        await close();
      }
    });
}
