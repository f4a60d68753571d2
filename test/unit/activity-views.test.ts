/**
 * Each proxy in the workflows is typed with the activity view of the task queue it sends to
 * (activities/types.ts). The `@ts-expect-error` lines are checked by `tsc --noEmit` (part of `npm test`): if
 * a training activity became callable through a workflow-queue proxy, or a registry step through the
 * training proxy, the directive would be unused and type checking would fail.
 */
import type { ActivityInterfaceFor } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import type { IngestActivities, LocalRegistryActivities, TrainingQueueActivities, WorkflowQueueActivities } from '../../activities/types.ts';
import { TRAINING_ACTIVITIES } from '../../activities/index.ts';

// Never called: these exist for the type checker.
export function wrongProxies(
  workflowQueue: ActivityInterfaceFor<WorkflowQueueActivities>,
  local: ActivityInterfaceFor<LocalRegistryActivities>,
  ingest: ActivityInterfaceFor<IngestActivities>,
  trainingQueue: ActivityInterfaceFor<TrainingQueueActivities>,
): unknown[] {
  return [
    // @ts-expect-error training runs on the training queue, not the workflow queue
    workflowQueue.trainCandidate,
    // @ts-expect-error evaluation runs on the training queue, not the workflow queue
    workflowQueue.evaluateVersions,
    // @ts-expect-error a local activity runs in the workflow worker: never training
    local.trainCandidate,
    // @ts-expect-error the cycle's local activities are registry steps; ingest heartbeats on its own
    local.ingestDrop,
    // @ts-expect-error the ingest proxy has no registry steps
    ingest.moveChannel,
    // @ts-expect-error the training worker serves no registry step
    trainingQueue.moveChannel,
    // @ts-expect-error the RL update runs on the training queue, not in the workflow worker
    local.trainRl,
    // @ts-expect-error recording an RL run is a registry step, not a training-queue activity
    trainingQueue.recordRlRun,
    // What each proxy is for does compile.
    workflowQueue.moveChannel,
    workflowQueue.ingestDrop,
    local.lineSnapshot,
    ingest.ingestEvidence,
    trainingQueue.trainCandidate,
    trainingQueue.evaluateUntrained,
    trainingQueue.trainRl,
    local.recordRlRun,
  ];
}

describe('activity views', () => {
  it('the training worker registers exactly the training-queue view', () => {
    // The split in workers/create.ts goes by this list; the type in activities/index.ts ties it to the view.
    expect([...TRAINING_ACTIVITIES].sort()).toEqual(['countFlips', 'evaluateUntrained', 'evaluateVersions', 'measurePlasticity', 'runRecipeTrial', 'trainCandidate', 'trainRl']);
  });
});
