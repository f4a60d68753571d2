/** The activity factory: every activity of the release loop, built from injected dependencies. */
import type { ActivityDeps } from './deps.ts';
import type { TrainingQueueActivities } from './types.ts';
import { evaluationActivities } from './evaluate.ts';
import { ingestActivities } from './ingest.ts';
import { releaseActivities } from './release.ts';
import { trainingActivities } from './train.ts';
import { searchRegistryActivities, trialActivities } from './search.ts';
import { rlActivities, rlRegistryActivities } from './rl.ts';

export type { ActivityDeps } from './deps.ts';

/** Builds the activities; the workflow worker registers the light ones, the training worker the heavy ones. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...releaseActivities(deps),
    ...ingestActivities(deps),
    ...trainingActivities(deps),
    ...evaluationActivities(deps),
    ...trialActivities(deps),
    ...searchRegistryActivities(deps),
    ...rlActivities(deps),
    ...rlRegistryActivities(deps),
  };
}

/** Activities that run on the training task queue (CPU/GPU bound): exactly the keys of TrainingQueueActivities. */
export const TRAINING_ACTIVITIES = ['trainCandidate', 'evaluateVersions', 'evaluateUntrained', 'measurePlasticity', 'countFlips', 'runRecipeTrial', 'trainRl'] as const satisfies readonly (keyof TrainingQueueActivities)[];
// The list names every training-queue activity, or the training worker would not serve the missing one.
const everyTrainingActivityListed: Exclude<keyof TrainingQueueActivities, (typeof TRAINING_ACTIVITIES)[number]> extends never ? true : false = true;
void everyTrainingActivityListed;
