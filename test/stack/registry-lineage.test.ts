/** Lineage: which data, run, parents and foundation produced a version, where it was released, who runs it now. */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
const drops: Record<string, string> = {};
const runs: Record<string, string> = {};
let resumedFrom = '';

/** One release cycle: drop -> run -> version -> gate -> candidate -> canary -> stable. */
async function cycle(
  line: string,
  tag: string,
  parent: number | null,
  foundation?: { line: string; version: number },
  checkpoints?: { digest: string; step: number; resumed?: true }[],
): Promise<number> {
  drops[tag] = await seedDrop(t.registry, line, tag);
  const v = await seedVersion(t, line, { parent, drops: [drops[tag]!], ...(foundation ? { foundation } : {}), key: `cycle:${line}:${tag}`, checkpoints });
  runs[tag] = v.key;
  const gate = await t.registry.recordGateDecision({
    line,
    key: `gate:${line}:${tag}`,
    candidate: v.version,
    champion: parent,
    verdict: 'pass',
    suites: [{ suite: 'general', pass: true }],
  });
  for (const channel of ['candidate', 'canary', 'stable']) {
    const current = (await t.registry.getChannels(line)).find((c) => c.channel === channel)!;
    await t.registry.moveChannel({
      line,
      channel,
      to: v.version,
      expectedEpoch: current.epoch,
      actor: 'loop',
      reason: `cycle ${tag}`,
      gateDecisionId: gate,
      requestKey: `${line}:${tag}:${channel}`,
    });
  }
  return v.version;
}

beforeAll(async () => {
  t = await openTestRegistry('registry_lineage');
  await seedLine(t.registry, 'base');
  await seedLine(t.registry, 'support', 'base');
  const base1 = await cycle('base', 'b1', null);
  const s1 = await cycle('support', 's1', null, { line: 'base', version: base1 });
  await t.registry.bindApplication({ app: 'legacy', line: 'support', channel: 'stable', policy: 'hold', actor: 'ops' });
  await t.registry.bindApplication({ app: 'helpdesk', line: 'support', channel: 'stable', policy: 'follow', actor: 'ops' });
  await cycle('support', 's2', s1, { line: 'base', version: base1 });
  // s3's run took over from a checkpoint (a retried attempt's, or a search trial's) at step 5.
  resumedFrom = await t.store.put(randomBytes(64));
  await cycle('support', 's3', 2, { line: 'base', version: base1 }, [
    { digest: resumedFrom, step: 5, resumed: true },
    { digest: await t.store.put(randomBytes(64)), step: 10 },
  ]);
  // A failed candidate that was never released.
  await seedVersion(t, 'support', { parent: 3, foundation: { line: 'base', version: base1 } });
});
afterAll(async () => {
  await t?.close();
});

describe('lineage', () => {
  it('traces a version two cycles deep to its drops, run, parents, foundation, releases and applications', async () => {
    const l = await t.registry.lineage('support', 3);
    expect(l.kind).toBe('application');
    expect(l.version).toMatchObject({ line: 'support', version: 3, parentVersion: 2, foundationVersion: { line: 'base', version: 1 }, trainingRun: runs.s3 });
    expect(l.drops.map((d) => d.digest)).toEqual([drops.s3]);
    expect(l.trainingRun).toMatchObject({ key: runs.s3, status: 'completed', parentVersion: 2, drops: [drops.s3], version: 3 });
    expect(l.parents.map((p) => [p.version.version, p.drops.map((d) => d.digest)])).toEqual([
      [2, [drops.s2]],
      [1, [drops.s1]],
    ]);
    expect(l.parentsTruncated).toBe(false);
    expect(l.allDrops).toEqual([drops.s1, drops.s2, drops.s3]);
    expect(l.foundation).toMatchObject({ line: 'base', version: 1 });
    expect(l.releases.map((r) => [r.channel, r.fromVersion, r.toVersion])).toEqual([
      ['candidate', 2, 3],
      ['canary', 2, 3],
      ['stable', 2, 3],
    ]);
    expect(l.applications.map((a) => [a.app, a.via, a.resolvedVersion])).toEqual([['helpdesk', 'direct', 3]]);
  });

  it('shows where an older version went and who still holds it', async () => {
    const l = await t.registry.lineage('support', 1);
    expect(l.parents).toEqual([]);
    expect(l.releases.map((r) => [r.channel, r.fromVersion, r.toVersion])).toEqual([
      ['candidate', null, 1],
      ['canary', null, 1],
      ['stable', null, 1],
      ['candidate', 1, 2],
      ['canary', 1, 2],
      ['stable', 1, 2],
    ]);
    expect(l.applications.map((a) => [a.app, a.policy, a.resolvedVersion])).toEqual([['legacy', 'hold', 1]]);
  });

  it('lists the applications built on a foundation version', async () => {
    const l = await t.registry.lineage('base', 1);
    expect(l.kind).toBe('foundation');
    expect(l.foundation).toBeNull();
    expect(l.applications.map((a) => [a.app, a.via, a.runs])).toEqual([
      ['helpdesk', 'foundation', { line: 'support', version: 3 }],
      ['legacy', 'foundation', { line: 'support', version: 1 }],
    ]);
  });

  it('bounds the parent walk and reports an unreleased version', async () => {
    const l = await t.registry.lineage('support', 4, { depth: 2 });
    expect(l.parents.map((p) => p.version.version)).toEqual([3, 2]);
    expect(l.parentsTruncated).toBe(true);
    expect(l.releases).toEqual([]);
    expect(l.applications).toEqual([]);
    await expect(t.registry.lineage('support', 99)).rejects.toThrow(/version support@99 does not exist/);
  });

  it('`perennial lineage` prints the chain, and JSON with --json', { timeout: 120_000 }, async () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'lineage', ...args], {
        encoding: 'utf8',
        env: { ...process.env, DATABASE_URL: t.database.appUrl, PERENNIAL_DATA_DIR: t.dir, TEMPORAL_ADDRESS: '127.0.0.1:1' },
        timeout: 60_000,
      });
    const human = run('support@stable');
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/^support@3 {2}\(application line/);
    expect(human.stdout).toContain(`${drops.s3!.slice(0, 12)} s3 accepted`);
    expect(human.stdout).toMatch(
      new RegExp(`training run\n {2}cycle:support:s3: completed, 10 steps, .*; resumed at step 5 from checkpoint ${resumedFrom.slice(0, 12)}\n`),
    );
    expect(human.stdout).toMatch(/parents\n {2}support@2 <- drops [0-9a-f]{12}\n {2}support@1 <- drops/);
    expect(human.stdout).toMatch(/foundation\n {2}base@1/);
    expect(human.stdout).toMatch(/support@stable: 2 -> 3 \(epoch 3\) by loop: cycle s3 \[gate decision \d+\]/);
    expect(human.stdout).toContain('helpdesk -> support@stable (follow)');
    const json = run('support@2', '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ version: { version: 2 }, parents: [{ version: { version: 1 } }], trainingRun: { checkpoints: [] } });
    expect(run('support@2').stdout).toMatch(/from parent 1\n/);
    expect(run('support@nope').status).toBe(1);
  });
});
