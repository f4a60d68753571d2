/**
 * The `perennial` CLI (commander). Each command lives in scripts/commands/ and registers itself here.
 * Errors a user can act on print one message and exit 1; bad arguments exit 2.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import { explain } from '../schemas/io.ts';
import { UserError } from './commands/context.ts';
import { RequestRefusedError } from '../client/ops.ts';
import * as app from './commands/app.ts';
import * as audit from './commands/audit.ts';
import * as drop from './commands/drop.ts';
import * as feedback from './commands/feedback.ts';
import * as line from './commands/line.ts';
import * as lineage from './commands/lineage.ts';
import * as release from './commands/release.ts';
import * as report from './commands/report.ts';
import * as sample from './commands/sample.ts';
import * as schedule from './commands/schedule.ts';
import * as status from './commands/status.ts';
import * as verify from './commands/verify.ts';
import * as versions from './commands/versions.ts';
import * as upgrade from './commands/upgrade.ts';
import * as watch from './commands/watch.ts';

export function buildProgram(): Command {
  const program = new Command('perennial')
    .description('Keep language models learning in production: drops in, gated releases out, every step recorded.')
    .showHelpAfterError()
    .exitOverride();
  for (const command of [line, drop, feedback, watch, status, versions, release, schedule, app, report, sample, lineage, verify, audit, upgrade]) command.register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UserError) {
      console.error(`perennial: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof RequestRefusedError) {
      // The workflow's own reason; the Temporal error around it ("Workflow Update failed") says nothing more.
      console.error(`perennial: ${err.message}`);
      return 1;
    }
    if (err instanceof ZodError) {
      // The user's own input, answered to them: unknown fields are named (ingest only counts them).
      console.error(`perennial: ${explain(err, { names: true })}`);
      return 2;
    }
    const e = err as { message?: string; cause?: { message?: string } };
    console.error(`perennial: ${e.cause?.message ?? e.message ?? String(err)}`);
    if (process.env.PERENNIAL_DEBUG) console.error(err);
    return 1;
  }
}

/**
 * Runs the CLI as a process and exits with its status: the bin (`bin/perennial.mjs`, however npm links it)
 * and `tsx scripts/cli.ts` both end here. A reader that goes away (`perennial status | head -4`) ends the
 * command quietly with 141 (128 + SIGPIPE), as `git log | head` does; Node ignores SIGPIPE, so without
 * this the next write raises an unhandled EPIPE with a stack trace.
 */
export async function run(argv: string[] = process.argv): Promise<never> {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(141);
      throw err;
    });
  }
  process.exit(await main(argv));
}

// `tsx scripts/cli.ts` (npm run perennial); the bin imports this module and calls run() itself.
if (isEntry(process.argv[1])) await run();

function isEntry(script: string | undefined): boolean {
  try {
    return script !== undefined && import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false; // argv[1] is not a file (node -e, a REPL)
  }
}
