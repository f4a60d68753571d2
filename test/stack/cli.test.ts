/**
 * The `perennial` CLI against a real installation: line create, drop --wait, status, versions, rollback,
 * app bind, lineage, report, sample, and the clear message when no stack is running.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli-in-process.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { cliEnv, startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const line = `cli-${Date.now().toString(36).slice(-5)}`;
const saved = { ...process.env };

beforeAll(async () => {
  loop = await startTestLoop('cli');
  await loop.startWorkers();
  Object.assign(process.env, cliEnv(loop));
});
afterAll(async () => {
  process.env = saved;
  await loop?.close();
});

describe('the perennial CLI', () => {
  it('says clearly when no stack is running', async () => {
    const env = { ...process.env };
    delete process.env.TEMPORAL_ADDRESS;
    delete process.env.DATABASE_URL;
    process.env.PERENNIAL_DATA_DIR = join(loop.dataDir, 'nowhere');
    try {
      const r = await cli('status');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no perennial stack is running .*npm start/s);
    } finally {
      process.env = env;
    }
  });

  it('rejects bad arguments with a message the user can act on', async () => {
    expect((await cli('line', 'create', 'Bad_Name', '--kind', 'foundation')).err).toMatch(/lowercase letters, digits and dashes/);
    const rb = await cli('rollback', line, '--to', 'two', '--reason', 'x');
    expect(rb.code).toBe(2);
    expect(rb.err).toMatch(/version number/);
    const file = join(loop.dataDir, 'x.jsonl');
    writeFileSync(file, '{"text":"a drop for a line that is not there"}\n');
    expect((await cli('drop', 'no-such-line', file)).err).toMatch(/line no-such-line does not exist; create it first/);
  });

  it("gives a new line its preset's default budget: base foundations train longer, applications keep the default", async () => {
    const steps = async (...args: string[]) => {
      const r = await cli('line', 'create', ...args, '--json');
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).recipe.steps as number;
    };
    expect(await steps('budget-base', '--kind', 'foundation', '--preset', 'base')).toBe(1200);
    expect(await steps('budget-small', '--kind', 'foundation', '--preset', 'small')).toBe(200);
    expect(await steps('budget-app', '--foundation', 'budget-base')).toBe(200);
    expect(await steps('budget-base-short', '--kind', 'foundation', '--preset', 'base', '--steps', '300')).toBe(300);
  });

  it('creates a line, sends drops, shows versions and status, rolls back, binds an app, traces lineage', async () => {
    expect(
      (await cli('line', 'create', line, '--kind', 'foundation', '--preset', 'tiny', '--steps', '60', '--recipe', '{"batchSize":8,"checkpointEvery":20}')).code,
    ).toBe(0);
    for (const seed of [1, 2]) {
      const file = join(loop.dataDir, `cli-${seed}.jsonl`);
      writeFileSync(
        file,
        generalText(rng(seed), 40)
          .map((r) => JSON.stringify(r))
          .join('\n'),
      );
      const sent = await cli('drop', line, file, '--wait', '--json');
      expect(sent.code).toBe(0);
      expect(JSON.parse(sent.out).result).toMatchObject({ verdict: 'promoted', version: seed });
    }
    // The same content again (a copy under another name): the line takes a digest once, and the CLI says so
    // at once, with that content's cycle as the answer (it used to wait 15 minutes for a cycle that never came).
    const copy = join(loop.dataDir, 'cli-1-copy.jsonl');
    writeFileSync(copy, readFileSync(join(loop.dataDir, 'cli-1.jsonl')));
    const again = await cli('drop', line, copy, '--wait');
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/the line took this content before \(cycle:\S+: promoted - [^)]*\); it takes a content digest once/);
    expect(again.out).toMatch(new RegExp(`: promoted \\(${line}@1\\)`));
    // With a recipe override the send is ignored all the same: the CLI says the override is not applied
    // instead of printing it as this drop's recipe.
    const override = await cli('drop', line, copy, '--recipe', '{"steps":5}');
    expect(override.code, override.err).toBe(0);
    expect(override.out).toContain('its --recipe is not applied');
    expect(override.out).not.toContain('recipe for this drop');
    const overrideJson = JSON.parse((await cli('drop', line, copy, '--recipe', '{"steps":5}', '--json')).out);
    expect(overrideJson.effectiveRecipe).toBeUndefined();
    expect(overrideJson.recipeIgnored).toMatch(/not applied/);
    const versions = JSON.parse((await cli('versions', line, '--json')).out);
    expect(versions.map((v: { version: number; parent: number | null }) => [v.version, v.parent])).toEqual([
      [1, null],
      [2, 1],
    ]);
    const status = JSON.parse((await cli('status', line, '--json')).out);
    expect(status.lines[0]).toMatchObject({ line, channels: { stable: 2 } });

    const rb = await cli('rollback', line, '--to', '1', '--reason', 'bad answers in v2', '--actor', 'ops', '--json');
    expect(rb.code).toBe(0);
    expect(JSON.parse(rb.out)).toMatchObject({ channel: 'stable', from: 2, to: 1 });

    expect((await cli('app', 'bind', 'kiosk', `${line}@stable`, '--policy', 'hold')).code).toBe(0);
    expect((await cli('app', 'bind', 'helpdesk', `${line}@stable`)).code).toBe(0);
    const apps = JSON.parse((await cli('app', 'list', '--json')).out) as { app: string; resolvedVersion: number }[];
    expect(apps.find((a) => a.app === 'kiosk')?.resolvedVersion).toBe(1);
    // stable moves on to v2: helpdesk follows, kiosk holds v1 and is shown the newer version as available.
    expect((await cli('rollback', line, '--to', '2', '--reason', 'v2 fixed', '--actor', 'ops')).code).toBe(0);
    const held = await cli('status');
    expect(held.out).toMatch(new RegExp(`kiosk +${line}@stable +hold +-> version 1 \\(upgrade available: version 2 on stable\\)`));
    expect(held.out).toMatch(new RegExp(`helpdesk +${line}@stable +follow +-> version 2\n`));
    const heldJson = JSON.parse((await cli('status', '--json')).out) as { applications: { app: string; upgradeAvailable: number | null }[] };
    expect(heldJson.applications.find((a) => a.app === 'kiosk')?.upgradeAvailable).toBe(2);

    const lineage = JSON.parse((await cli('lineage', `${line}@2`, '--json')).out);
    expect(lineage.parents.map((p: { version: { version: number } }) => p.version.version)).toEqual([1]);
    expect(lineage.releases.some((r: { reason: string }) => r.reason.includes('bad answers in v2'))).toBe(true);

    expect((await cli('verify', line)).code).toBe(0);
    expect((await cli('audit', 'verify')).code).toBe(0);

    const out = join(loop.dataDir, 'report.html');
    expect((await cli('report', '--out', out)).code).toBe(0);
    expect(existsSync(out) && readFileSync(out, 'utf8')).toContain('class="heatmap"');

    const sample = await cli('sample', `${line}@stable`, 'The river', '--max-tokens', '12', '--temperature', '0');
    expect(sample.code).toBe(0);
    expect(sample.out.startsWith('The river')).toBe(true);
    expect(sample.out.length).toBeGreaterThan('The river'.length);
  });
});
