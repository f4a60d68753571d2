/**
 * Worker process entry: `tsx workers/main.ts workflow|training`. Configured from the environment
 * (see workers/config.ts); stops gracefully on SIGINT/SIGTERM.
 */
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { initBackend } from '../model/backend.ts';
import { runtimeConfigFromEnv, temporalConnectionOptions } from './config.ts';
import { createTrainingWorker, createWorkflowWorker } from './create.ts';
import { buildDeps } from './wiring.ts';

const kind = process.argv[2];
if (kind !== 'workflow' && kind !== 'training') {
  console.error('usage: tsx workers/main.ts workflow|training');
  process.exit(2);
}

Runtime.install({
  logger: new (await import('@temporalio/worker')).DefaultLogger('WARN'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } },
});

const config = runtimeConfigFromEnv();
const { deps, close } = await buildDeps(config);
const { apiKey, ...connectionOptions } = temporalConnectionOptions(config.temporalAddress);
const connection = await NativeConnection.connect({ ...connectionOptions, ...(typeof apiKey === 'string' ? { apiKey } : {}) });
const bundlePath = process.env.PERENNIAL_WORKFLOW_BUNDLE;
const opts = { connection, namespace: config.namespace, taskQueue: config.taskQueue, deps, bundle: bundlePath ? { codePath: bundlePath } : undefined };
let backend = '';
if (kind === 'training') backend = await initBackend();
const worker = kind === 'workflow' ? await createWorkflowWorker(opts) : await createTrainingWorker(opts);
// The parent (npm start, the tests) waits for this line before it sends work.
console.log(JSON.stringify({ ready: kind, pid: process.pid, taskQueue: worker.options.taskQueue, backend }));
await worker.run();
await connection.close();
await close();
