/**
 * After `npm ci`: the parts whose install scripts package.json's `allowScripts` decides still work with
 * exactly that set. The embedded PostgreSQL starts (its postinstall hydrates the symlinks of its
 * libraries), every installed esbuild transforms (its postinstall checks the platform binary), SWC
 * transforms (its postinstall is denied: it only checks the native binding, which the platform package
 * brings), and the Temporal CLI (installed by our own postinstall) runs a dev server. `.ci/run` calls it.
 */
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import postgres from 'postgres';
import { startPostgres } from './stack/postgres.ts';
import { findTemporalCli, startTemporal } from './stack/temporal.ts';
import { freePort } from './stack/wait.ts';

const require = createRequire(import.meta.url);
const root = mkdtempSync(join(tmpdir(), 'perennial-check-install-'));
chmodSync(root, 0o755); // as root, PostgreSQL runs as `postgres`, which must reach its folder inside
const ok = (what: string) => console.log(`ok  ${what}`);

try {
  // Every copy npm installed (the lockfile lists them): vite/tsx/vitest's, drizzle-kit's, @esbuild-kit's.
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { optional?: boolean }> };
  const copies = Object.keys(lock.packages).filter((p) => /(^|\/)node_modules\/esbuild$/.test(p) && existsSync(p));
  if (!copies.length) throw new Error('no esbuild installed');
  for (const dir of copies) {
    const esbuild = require(resolve(dir)) as typeof import('esbuild');
    const out = esbuild.transformSync('const n: number = 1', { loader: 'ts' }).code;
    if (!out.includes('const n = 1')) throw new Error(`esbuild ${esbuild.version} (${dir}) transformed to ${out}`);
    ok(`esbuild ${esbuild.version} (${dir})`);
  }

  const swc = require(require.resolve('@swc/core', { paths: [require.resolve('@temporalio/worker')] })) as typeof import('@swc/core');
  if (!swc.transformSync('const n: number = 1', { jsc: { parser: { syntax: 'typescript' } } }).code.includes('n = 1')) throw new Error('SWC did not transform');
  ok(`@swc/core ${swc.version} (Temporal's workflow bundler)`);

  const pg = await startPostgres({ root: join(root, 'postgres'), port: await freePort() });
  try {
    const sql = postgres(pg.adminUrl, { max: 1, onnotice: () => {} });
    const [row] = await sql`select version()`;
    await sql.end();
    ok(`embedded PostgreSQL answers: ${String(row!.version).split(' on ')[0]}`);
  } finally {
    await pg.stop();
  }

  const cli = findTemporalCli();
  if (!cli) throw new Error('no Temporal CLI: the postinstall (scripts/install-temporal.mjs) did not install one');
  const temporal = await startTemporal({ dbFile: join(root, 'temporal.db'), port: await freePort(), namespace: 'default', headless: true });
  try {
    const connection = await Connection.connect({ address: temporal.address });
    await connection.workflowService.getSystemInfo({});
    await connection.close();
    ok(`Temporal CLI (${cli.source}: ${cli.path}) serves a dev server at ${temporal.address}`);
  } finally {
    await temporal.stop();
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
