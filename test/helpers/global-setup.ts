/**
 * Starts the real parts once per test run: an embedded PostgreSQL and a Temporal dev server, each on a
 * free port with its files in a fresh temporary folder. Tests get the addresses through `inject`.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../../scripts/stack/postgres.ts';
import { startTemporal } from '../../scripts/stack/temporal.ts';
import { freePort } from '../../scripts/stack/wait.ts';
import { bundleWorkflows } from '../../workers/bundle.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
    temporalAddress: string;
    temporalNamespace: string;
    /** A scratch folder for this run; each test makes its own subfolder. */
    runDir: string;
    /** The workflow code, bundled once per run so each test's worker starts in a second. */
    workflowBundlePath: string;
  }
}

export default async function setup(project: TestProject) {
  const runDir = mkdtempSync(join(tmpdir(), 'perennial-test-'));
  chmodSync(runDir, 0o755); // the embedded PostgreSQL runs as `postgres` when we are root and must reach its folder
  // The tests write their drops beside their data folders in this run's folder: that is their drop root (the
  // system's temporary folder is no default root). Set before the test processes start, so they inherit it.
  process.env.PERENNIAL_DROP_ROOTS = runDir;
  const [pgPort, temporalPort] = [await freePort(), await freePort()];
  const [pg, temporal, bundle] = await Promise.all([
    startPostgres({ root: join(runDir, 'postgres'), port: pgPort }),
    startTemporal({ dbFile: join(runDir, 'temporal.db'), port: temporalPort, namespace: 'default', headless: true, logFile: join(runDir, 'temporal.log') }),
    bundleWorkflows(),
  ]);
  const workflowBundlePath = join(runDir, 'workflow-bundle.js');
  writeFileSync(workflowBundlePath, bundle.code);
  project.provide('workflowBundlePath', workflowBundlePath);
  project.provide('adminDatabaseUrl', pg.adminUrl);
  project.provide('temporalAddress', temporal.address);
  project.provide('temporalNamespace', temporal.namespace);
  project.provide('runDir', runDir);
  return async () => {
    await Promise.allSettled([temporal.stop(), pg.stop()]);
    if (!process.env.PERENNIAL_KEEP_TEST_DATA) rmSync(runDir, { recursive: true, force: true });
  };
}
