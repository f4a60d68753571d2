/**
 * A private stack for a benchmark: its own temporary folder, free ports, one training worker, a Temporal client
 * and the registry, and a `close` that stops all of it and (unless kept) removes the folder.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { openRegistry } from '../../workers/wiring.ts';
import { startStack } from './stack.ts';
import { freePort } from './wait.ts';

export async function startPrivateStack(name: string, opts: { taskQueue: string; keep?: boolean }) {
  const root = mkdtempSync(join(tmpdir(), `perennial-${name}-`));
  chmodSync(root, 0o755); // the embedded PostgreSQL runs as `postgres` when we are root and must reach its folder
  // <data>/drops is a default drop root (the temporary folder is not): benchmarks write their drops there.
  const dropDir = join(root, 'drops');
  mkdirSync(dropDir, { recursive: true });
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  try {
    stack = await startStack({
      dataDir: root,
      temporalPort: await freePort(),
      uiPort: await freePort(),
      postgresPort: await freePort(),
      namespace: 'default',
      taskQueue: opts.taskQueue,
      trainingWorkers: 1,
      headless: true,
      log: () => {},
      env: { ...process.env, TEMPORAL_ADDRESS: '', DATABASE_URL: '' },
    });
    const connection = await Connection.connect({ address: stack.state.temporal.address });
    const client = new Client({ connection, namespace: 'default' });
    const installation = openRegistry(stack.state.database.url, root);
    const started = stack;
    return {
      root,
      dropDir,
      stack: started,
      client,
      installation,
      async close() {
        try {
          await installation.close();
          await connection.close();
          await started.stop();
        } finally {
          if (!opts.keep) rmSync(root, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    // A stack that failed to start leaves no folder behind either.
    await stack?.stop().catch(() => {});
    if (!opts.keep) rmSync(root, { recursive: true, force: true });
    throw err;
  }
}
