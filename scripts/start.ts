/**
 * `npm start`: bring the local stack up (PostgreSQL, Temporal with its Web UI, both workers), run the demo
 * scenario, print its table and the UI address, and keep serving until Ctrl-C. `--exit-when-done` exits 0
 * after the scenario instead. A second start while one runs says so and leaves the first one alone.
 */
import { Command } from 'commander';
import { Client, Connection } from '@temporalio/client';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable, runDemo } from './demo.ts';
import { buildReport } from '../report/report.ts';
import { acquireStackLock, writeState } from './stack/state.ts';
import { startStack, type Stack } from './stack/stack.ts';
import { dataDir as defaultDataDir } from './commands/context.ts';
import { openRegistry } from '../workers/wiring.ts';
import { DEFAULT_TASK_QUEUE } from '../workers/config.ts';

const env = process.env;
const program = new Command('npm start')
  .description('Start the local perennial stack and run the demo scenario.')
  .option('--exit-when-done', 'exit with 0 after the demo instead of serving until Ctrl-C')
  .option('--no-demo', 'start the stack and serve, without running the demo')
  .option('--data-dir <dir>', 'where the installation keeps its files', defaultDataDir())
  .option('--temporal-port <port>', 'Temporal frontend (gRPC) port', env.PERENNIAL_TEMPORAL_PORT ?? '7233')
  .option('--ui-port <port>', 'Temporal Web UI port', env.PERENNIAL_UI_PORT ?? '8233')
  .option('--postgres-port <port>', 'embedded PostgreSQL port', env.PERENNIAL_POSTGRES_PORT ?? '54329')
  .option('--training-workers <n>', 'training worker processes (each uses one core)', env.PERENNIAL_TRAINING_WORKERS ?? '1')
  .option('--task-queue <name>', 'workflow task queue (training uses <name>.training)', env.PERENNIAL_TASK_QUEUE ?? DEFAULT_TASK_QUEUE)
  .parse();
const opts = program.opts<{
  exitWhenDone?: boolean;
  demo: boolean;
  dataDir: string;
  temporalPort: string;
  uiPort: string;
  postgresPort: string;
  trainingWorkers: string;
  taskQueue: string;
}>();

const log = (line: string) => console.log(`[perennial] ${line}`);
const lock = acquireStackLock(opts.dataDir);
if (!lock.ok) {
  console.error(`perennial is already running for ${opts.dataDir} (pid ${lock.holder}); this start leaves it alone and exits.`);
  console.error('Use the CLI against it (npx perennial status), or stop it with Ctrl-C in its terminal.');
  process.exit(1);
}

let stack: Stack | undefined;
let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  log('stopping workers, Temporal and PostgreSQL ...');
  await stack?.stop().catch((err) => console.error(err));
  lock.ok && lock.release();
  log('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

try {
  const started = Date.now();
  stack = await startStack({
    dataDir: opts.dataDir,
    temporalPort: Number(opts.temporalPort),
    uiPort: Number(opts.uiPort),
    postgresPort: Number(opts.postgresPort),
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: opts.taskQueue,
    trainingWorkers: Math.max(1, Number(opts.trainingWorkers)),
    log,
    supervise: true,
  });
  writeState({ ...stack.state, phase: opts.demo ? 'demo' : 'serving' });
  log(`Temporal ${stack.state.temporal.address}${stack.state.temporal.uiUrl ? `, Web UI ${stack.state.temporal.uiUrl}` : ''}; data in ${stack.state.dataDir}`);

  if (opts.demo) {
    const connection = await Connection.connect({ address: stack.state.temporal.address });
    const client = new Client({ connection, namespace: stack.state.temporal.namespace });
    const installation = openRegistry(stack.state.database.url, stack.state.dataDir);
    try {
      const rows = await runDemo({ client, registry: installation.registry, taskQueue: opts.taskQueue, dataDir: stack.state.dataDir, log });
      console.log('\n' + formatTable(rows) + '\n');
      for (const a of await installation.registry.listApplications())
        log(`application ${a.app} -> ${a.line}@${a.channel} (${a.policy}) resolves to version ${a.resolvedVersion ?? 'none'}`);
      const report = join(stack.state.dataDir, 'report.html');
      writeFileSync(report, await buildReport(installation.registry));
      log(`report (curves, forgetting heatmap, release timeline, quarantine): ${report}`);
    } finally {
      await installation.close();
      await connection.close();
    }
    log(`demo finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  writeState({ ...stack.state, phase: 'serving' });
  if (stack.state.temporal.uiUrl) log(`Temporal Web UI: ${stack.state.temporal.uiUrl}/namespaces/${stack.state.temporal.namespace}/workflows`);
  if (opts.exitWhenDone) await shutdown(0);
  else log('serving; press Ctrl-C to stop (every process started here stops with it)');
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  await shutdown(1);
}
