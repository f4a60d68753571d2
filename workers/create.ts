/**
 * The two workers: the workflow worker (workflows and light registry/ingest activities on `<queue>`) and
 * the training worker (training and evaluation on `<queue>.training`, one at a time per process).
 */
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WORKFLOWS_PATH } from './bundle.ts';
import { createActivities, TRAINING_ACTIVITIES } from '../activities/index.ts';
import type { ActivityDeps } from '../activities/deps.ts';
import { trainingQueueFor } from '../schemas/contracts/ids.ts';

function split(deps: ActivityDeps) {
  const all = createActivities(deps);
  const heavyNames = new Set<string>(TRAINING_ACTIVITIES);
  const light = Object.fromEntries(Object.entries(all).filter(([name]) => !heavyNames.has(name)));
  const heavy = Object.fromEntries(Object.entries(all).filter(([name]) => heavyNames.has(name)));
  return { light, heavy };
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  bundle?: WorkflowBundleWithSourceMap | { codePath: string };
}

export async function createWorkflowWorker(opts: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.bundle ? { workflowBundle: opts.bundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: split(opts.deps).light,
    // Registry activities are short and I/O bound; ingest reads files.
    maxConcurrentActivityTaskExecutions: 20,
  });
}

export async function createTrainingWorker(opts: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: trainingQueueFor(opts.taskQueue),
    activities: split(opts.deps).heavy,
    // One training or evaluation at a time: each one saturates a core; parallelism comes from more processes.
    maxConcurrentActivityTaskExecutions: 1,
    // Heartbeats carry checkpoint digests: the SDK would otherwise hold them back for up to 0.8 x the
    // heartbeat timeout (24 s), and a retry after a crash would resume from far behind the last checkpoint.
    // One heartbeat per 250 ms per training activity is little load for the server.
    maxHeartbeatThrottleInterval: '250ms',
    // A cancelled or crashed activity must release the slot quickly for the retry.
    shutdownGraceTime: '10s',
  });
}
