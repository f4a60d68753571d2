/** Every workflow type the worker registers. Only deterministic code is reachable from here. */
export { lineWorkflow } from './line-workflow.ts';
export { cycleWorkflow } from './cycle-workflow.ts';
export { reevaluateWorkflow } from './reevaluate-workflow.ts';
export { scheduleTickWorkflow } from './schedule-tick-workflow.ts';
export { upgradeWorkflow } from './upgrade-workflow.ts';
export { recipeSearchWorkflow } from './recipe-search.ts';
