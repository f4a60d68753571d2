/** The update recipe the benchmark recommends for the release loop's small model (evidence in model/continual/README.md). */
import type { Recipe } from '../../schemas/io.ts';
import { DEFAULT_RECIPE } from '../../schemas/defaults.ts';

export const RECOMMENDED_RECIPE: Recipe = { ...DEFAULT_RECIPE };
