/** `perennial feedback <line> <file>`: send a feedback drop (ratings, verifier prompts) to a line; its cycle adapts by RL. */
import type { Command } from 'commander';
import { CliArgs, mergeDeep, parseCliArgs, Recipe } from '../../schemas/io.ts';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { openClient, openRegistry, output, readableFile, UserError } from './context.ts';

export function register(program: Command) {
  program
    .command('feedback <line> <file>')
    .description(
      'send feedback JSONL ({"prompt", "completion", "reward"} ratings, {"prompt", "verifier", "gold"?} verifier prompts) to a line: its cycle adapts the stable version by RL',
    )
    .option('--source <name>', 'source name of the feedback (default: the file name)')
    .option('--recipe <json>', 'recipe fields to override for this cycle, e.g. {"rl":{"steps":40,"klBudget":0.5}}')
    .option('--wait', 'wait until the cycle for this feedback has finished and print its verdict')
    .option('--json', 'print JSON')
    .action(async (line: string, file: string, o) => {
      const { recipe, source } = parseCliArgs(CliArgs.drop, { line, file, source: o.source, recipe: o.recipe }, { line: '<line>', file: '<file>' });
      readableFile(file, '<file>');
      const reg = openRegistry();
      let effectiveRecipe: Recipe | undefined;
      try {
        const stored = await reg.registry.getLine(line).catch(() => {
          throw new UserError(`line ${line} does not exist; create it first: perennial line create ${line} --kind foundation (or --foundation <line>)`);
        });
        if (recipe) effectiveRecipe = parseCliArgs(Recipe, mergeDeep(stored.recipe, recipe), {}, '--recipe');
      } finally {
        await reg.close();
      }
      const { client, target, close } = await openClient();
      try {
        const sent = await sendDrop({ client, taskQueue: target.taskQueue }, line, file, { source, recipe, requestedBy: process.env.USER, kind: 'feedback' });
        const result = o.wait ? await waitForCycle(client, line, sent.request.digest, { except: sent.priorCycles }) : undefined;
        output(o.json, { ...sent, ...(effectiveRecipe ? { effectiveRecipe } : {}), result }, () => {
          console.log(`sent feedback ${sent.request.source} (${sent.request.digest.slice(0, 12)}) to ${sent.workflowId}`);
          if (result) console.log(`${result.cycleId}: ${result.verdict}${result.version ? ` (${line}@${result.version})` : ''} - ${result.reason}`);
          else console.log(`follow it with: perennial status ${line} --watch`);
        });
        if (result && result.verdict !== 'promoted') process.exitCode = 3;
      } finally {
        await close();
      }
    });
}
