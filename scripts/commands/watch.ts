/** `perennial watch <dir>`: send each new file in a drop folder to its line exactly once (across restarts too). */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { describeAlready, sendDrop } from '../../client/ops.ts';
import { DropWatcher, ledgerFor } from '../../client/watcher.ts';
import { openClient, readableFile, readableFolder } from './context.ts';

export function register(program: Command) {
  program
    .command('watch <dir>')
    .description('watch a drop folder: <dir>/<line>/<file>, or every file in <dir> with --line')
    .option('--line <line>', 'send every file in <dir> to this line')
    .option('--settle <ms>', 'how long a file must stay unchanged before it is sent', '1000')
    .option('--once', 'scan once and exit (for cron jobs and tests)')
    .action(async (dir: string, o) => {
      const args = parseCliArgs(CliArgs.watch, { dir, line: o.line, settle: o.settle }, { dir: '<dir>' });
      readableFolder(dir, '<dir>');
      const { client, target, close } = await openClient();
      const watcher = new DropWatcher({
        dir,
        line: args.line,
        ledgerPath: ledgerFor(target.dataDir, dir),
        settleMs: o.once ? 0 : args.settle,
        // A file removed between the scan and the send is refused (the next scan no longer lists it), never
        // sent as the digest of nothing.
        send: async (line, path) => {
          const sent = await sendDrop({ client, taskQueue: target.taskQueue }, line, readableFile(path, 'watch'), { requestedBy: 'watch' });
          return { digest: sent.request.digest, ...(sent.already ? { note: describeAlready(sent.already) } : {}) };
        },
        log: (line) => console.log(line),
      });
      try {
        if (o.once) return void (await watcher.scanOnce());
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        process.once('SIGTERM', () => stop.abort());
        console.log(`watching ${dir}${o.line ? ` for ${o.line}` : ' (one subfolder per line)'}; Ctrl-C to stop`);
        await watcher.run(stop.signal);
      } finally {
        await close();
      }
    });
}
