/** `perennial feedback <line> <file>`: send a feedback drop (ratings, verifier prompts) to a line; its cycle adapts by RL. */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { output } from './context.ts';
import { describeAlready } from '../../client/ops.ts';
import { sendFile } from './send.ts';

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
      const { sent, effectiveRecipe, recipeIgnored, result } = await sendFile(line, file, { source, recipe, kind: 'feedback', wait: o.wait });
      output(o.json, { ...sent, ...(effectiveRecipe ? { effectiveRecipe } : {}), ...(recipeIgnored ? { recipeIgnored } : {}), result }, () => {
        console.log(`sent feedback ${sent.request.source} (${sent.request.digest.slice(0, 12)}) to ${sent.workflowId}`);
        if (sent.already) console.log(describeAlready(sent.already));
        if (recipeIgnored) console.log(recipeIgnored);
        if (result) console.log(`${result.cycleId}: ${result.verdict}${result.version ? ` (${line}@${result.version})` : ''} - ${result.reason}`);
        else if (sent.already?.state !== 'taken') console.log(`follow it with: perennial status ${line} --watch`);
      });
      if (result && result.verdict !== 'promoted') process.exitCode = 3;
    });
}
