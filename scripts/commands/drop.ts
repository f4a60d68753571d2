/** `perennial drop <line> <file>`: send a data drop to a line (signal-with-start of its workflow). */
import type { Command } from 'commander';
import { CliArgs, parseCliArgs, type RecipeSearch } from '../../schemas/io.ts';
import { output } from './context.ts';
import { describeAlready } from '../../client/ops.ts';
import { sendFile } from './send.ts';
import { autoRecipeArg, describeSearch } from './line.ts';

export function register(program: Command) {
  program
    .command('drop <line> <file>')
    .description('send a JSONL ({"text": ...} or {"prompt": ..., "completion": ...}) or plain-text file to a line')
    .option('--source <name>', 'source name of the drop (default: the file name)')
    .option('--recipe <json>', 'recipe fields to override for this drop, e.g. {"steps":400}, or auto (search the cheapest passing recipe)')
    .option('--search-budget <flops|Nx>', "with --recipe auto: training FLOPs for all trials of this cycle, or N times the recipe's (default 1.5x)")
    .option('--wait', 'wait until the cycle for this drop has finished and print its verdict')
    .option('--json', 'print JSON')
    .action(async (line: string, file: string, o) => {
      const { recipe, source } = parseCliArgs(
        CliArgs.drop,
        { line, file, source: o.source, recipe: autoRecipeArg(o.recipe, o.searchBudget) },
        { line: '<line>', file: '<file>' },
      );
      const { sent, effectiveRecipe, recipeIgnored, result, target } = await sendFile(line, file, { source, recipe, wait: o.wait });
      output(o.json, { ...sent, ...(effectiveRecipe ? { effectiveRecipe } : {}), ...(recipeIgnored ? { recipeIgnored } : {}), result }, () => {
        console.log(`sent ${sent.request.source} (${sent.request.digest.slice(0, 12)}) to ${sent.workflowId}`);
        if (sent.already) console.log(describeAlready(sent.already));
        if (recipeIgnored) console.log(recipeIgnored);
        if (effectiveRecipe)
          console.log(
            `recipe for this drop: ${Object.entries(effectiveRecipe)
              .map(
                ([k, v]) =>
                  `${k} ${k === 'search' ? `auto (${describeSearch(v as RecipeSearch)})` : typeof v === 'object' ? JSON.stringify(v) : v}${k in recipe! ? ' (override)' : ''}`,
              )
              .join(', ')}`,
          );
        if (result) console.log(`${result.cycleId}: ${result.verdict}${result.version ? ` (${line}@${result.version})` : ''} - ${result.reason}`);
        else if (sent.already?.state !== 'taken')
          console.log(
            `follow it with: perennial status ${line} --watch${target.uiUrl ? `, or in the UI: ${target.uiUrl}/namespaces/${target.namespace}/workflows/${encodeURIComponent(sent.workflowId)}` : ''}`,
          );
      });
      if (result && result.verdict !== 'promoted') process.exitCode = 3;
    });
}
