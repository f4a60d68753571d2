/** `perennial schedule <line> --every|--cron` and `schedule list|pause|resume|delete`: Temporal Schedules for lines. */
import type { Command } from 'commander';
import { LineName } from '../../schemas/io.ts';
import { changeSchedules, createSchedules, listSchedules, type ScheduleKind } from '../../client/schedules.ts';
import { openClient, output, UserError } from './context.ts';

const KINDS = ['cycle', 'reevaluate'];

export function register(program: Command) {
  const schedule = program
    .command('schedule')
    .description('run cycles of pending drops and re-evaluations of stable on a Temporal Schedule')
    .argument('[line]', 'the line to schedule')
    .option('--every <interval>', 'an interval such as 30s, 15m, 6h, 1d')
    .option('--cron <expression>', 'a cron expression instead, e.g. "0 3 * * *"')
    .option('--only <kind>', 'create only the `cycle` or only the `reevaluate` schedule')
    .option('--json', 'print JSON')
    .action(async (line: string | undefined, o) => {
      if (!line) return schedule.help();
      if (!o.every === !o.cron) throw new UserError('give exactly one of --every <interval> or --cron <expression>', 2);
      if (o.every && !/^\d+(s|m|h|d)$/.test(o.every)) throw new UserError(`--every takes a number and a unit (s, m, h, d), e.g. 30m; got "${o.every}"`, 2);
      if (o.only && !KINDS.includes(o.only)) throw new UserError(`--only is one of ${KINDS.join(', ')}`, 2);
      const { client, target, close } = await openClient();
      try {
        const ids = await createSchedules(
          client,
          target.taskQueue,
          LineName.parse(line),
          { every: o.every, cron: o.cron },
          o.only ? [o.only as ScheduleKind] : undefined,
        );
        output(o.json, { scheduleIds: ids }, () =>
          console.log(`scheduled ${ids.join(', ')}${ids.some((i) => i.endsWith(':cycle')) ? `; drops to ${line} now wait for a tick` : ''}`),
        );
      } finally {
        await close();
      }
    });
  schedule
    .command('list')
    .description("list the lines' schedules")
    .option('--json', 'print JSON')
    .action(async (o) => {
      const { client, close } = await openClient();
      try {
        const all = await listSchedules(client);
        output(o.json, all, () => {
          if (!all.length) console.log('no schedules: perennial schedule <line> --every 1h');
          for (const s of all)
            console.log(`${s.scheduleId.padEnd(36)} ${(s.paused ? 'paused' : 'active').padEnd(7)} ${s.spec.padEnd(14)} next ${s.nextRuns[0] ?? '-'}`);
        });
      } finally {
        await close();
      }
    });
  for (const action of ['pause', 'resume', 'delete'] as const) {
    schedule
      .command(`${action} <line>`)
      .description(`${action} a line's schedules`)
      .option('--only <kind>', 'only the `cycle` or the `reevaluate` schedule')
      .action(async (line: string, o) => {
        const { client, close } = await openClient();
        try {
          const ids = await changeSchedules(client, LineName.parse(line), action, o.only);
          if (!ids.length) throw new UserError(`${line} has no schedule to ${action}`);
          console.log(`${action}d ${ids.join(', ')}`);
        } finally {
          await close();
        }
      });
  }
}
