/** Activity option presets. Each timeout and retry choice carries its reason. */
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';

import { ErrorType } from '../schemas/contracts/errors.ts';

// Error types that no retry can fix (schemas/contracts/errors.ts): the activities throw them.
const nonRetryableErrorTypes = Object.values(ErrorType);

// Registry writes and reads are short; a database restart is retried through, for up to ~10 minutes.
export const registry: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 40, nonRetryableErrorTypes },
};

// The cycle's registry steps are short database calls: as local activities they run inside the workflow
// task (no round trip through the server each), which keeps a cycle's orchestration overhead low. They are
// idempotent by key, as local activities must be; a database outage is retried through, as above.
export const registryLocal: LocalActivityOptions = {
  startToCloseTimeout: '30 seconds',
  localRetryThreshold: '10 seconds',
  retry: registry.retry,
};

// Ingest reads one file and writes it to the store; large drops take seconds, not minutes. It heartbeats, so
// when its worker dies the retry starts after the heartbeat timeout, not after the whole 5 minutes.
export const ingest: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 10, nonRetryableErrorTypes },
};

// Training is long and CPU-bound: a short heartbeat notices a dead worker fast; a retry resumes from the checkpoint.
export const training = (taskQueue: string): ActivityOptions => ({
  taskQueue,
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20, nonRetryableErrorTypes },
  cancellationType: 'WAIT_CANCELLATION_COMPLETED',
});

// Evaluation of every suite is minutes at most on the tiny models; it heartbeats per suite.
export const evaluation = (taskQueue: string): ActivityOptions => ({
  taskQueue,
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20, nonRetryableErrorTypes },
});
