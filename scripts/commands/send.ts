/** What `perennial drop` and `perennial feedback` share: check the file and the line, send, and wait when asked. */
import { mergeDeep, parseCliArgs, Recipe, type RecipeOverride } from '../../schemas/io.ts';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { openClient, openRegistry, readableFile, UserError } from './context.ts';

export interface SendFileOptions {
  source?: string;
  recipe?: RecipeOverride;
  kind?: 'feedback';
  wait?: boolean;
}

/** Why a send's recipe override did nothing (printed, and `recipeIgnored` in --json). */
const RECIPE_IGNORED = 'its --recipe is not applied: the cycle that takes this content keeps the recipe it was sent with';

/**
 * Refuses a file that cannot be read and a line that does not exist before anything is sent, lays a recipe
 * override over the line's stored recipe (checked whole), sends the file to the line's workflow
 * (signal-with-start) and, with `wait`, waits for the cycle of this digest.
 */
export async function sendFile(line: string, file: string, o: SendFileOptions) {
  readableFile(file, '<file>');
  const reg = openRegistry();
  let effectiveRecipe: Recipe | undefined;
  try {
    const stored = await reg.registry.getLine(line).catch(() => {
      throw new UserError(`line ${line} does not exist; create it first: perennial line create ${line} --kind foundation (or --foundation <line>)`);
    });
    // What this cycle trains with: the line's recipe with the override laid over it, checked whole.
    if (o.recipe) effectiveRecipe = parseCliArgs(Recipe, mergeDeep(stored.recipe, o.recipe), {}, '--recipe');
  } finally {
    await reg.close();
  }
  const { client, target, close } = await openClient();
  try {
    const sent = await sendDrop({ client, taskQueue: target.taskQueue }, line, file, {
      source: o.source,
      recipe: o.recipe,
      requestedBy: process.env.USER,
      ...(o.kind ? { kind: o.kind } : {}),
    });
    // Content the line took before, in a cycle it no longer lists: there is no cycle to wait for.
    const nothingToCome = sent.already?.state === 'taken' && !sent.already.cycle;
    const result = o.wait && !nothingToCome ? await waitForCycle(client, line, sent.request.digest, { except: sent.priorCycles }) : undefined;
    // The line ignores a send of content it has: its cycle (to come or done) keeps the recipe it was sent with.
    if (sent.already && effectiveRecipe) return { sent, recipeIgnored: RECIPE_IGNORED, result, target };
    return { sent, effectiveRecipe, result, target };
  } finally {
    await close();
  }
}
