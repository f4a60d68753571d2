/** RL runs in the registry (migration 0007): once per version, audited, append-only for the application role. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReport } from '../../report/report.ts';
import { InvalidInputError } from '../../schemas/contracts/errors.ts';
import { openTestRegistry, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
beforeAll(async () => {
  t = await openTestRegistry('registry_rl');
});
afterAll(async () => {
  await t?.close();
});

const digest = 'ab'.repeat(32);
const checks = [
  { step: 0, reward: 0.35, gold: 0.35, kl: 0 },
  { step: 80, reward: 0.61, gold: 0.61, kl: 0.15 },
];

describe('RL runs', () => {
  it('records a run once, keeps the first on a retry, and audits it once', async () => {
    const line = 'rlline';
    await seedLine(t.registry, line);
    const { version } = await seedVersion(t, line);
    const input = {
      line,
      version,
      feedbackDigests: [digest],
      recipe: { steps: 80, klBudget: 1 },
      rewardStats: { before: 0.35, after: 0.61 },
      checks,
      finalKl: 0.15,
      stoppedBy: 'steps',
      backend: 'cpu',
    };
    const first = await t.registry.recordRlRun(input);
    expect(first).toMatchObject({ line, version, feedbackDigests: [digest], checks, finalKl: 0.15, stoppedBy: 'steps', backend: 'cpu' });
    const retry = await t.registry.recordRlRun({ ...input, finalKl: 0.9, stoppedBy: 'guard' });
    expect(retry.finalKl).toBe(0.15);
    expect(await t.registry.getRlRuns(line)).toEqual([expect.objectContaining({ version, finalKl: 0.15, checks })]);
    const audit = await t.app.sql`select count(*)::int as n from audit_log where action = 'rl.record'`;
    expect(audit[0]!.n).toBe(1);
    await expect(t.registry.recordRlRun({ ...input, feedbackDigests: ['nope'] })).rejects.toThrow(InvalidInputError);
    await expect(t.registry.recordRlRun({ ...input, finalKl: Number.NaN })).rejects.toThrow(/finalKl must be a non-negative number/);
    // The report draws the run's reward, gold and KL curves.
    const html = await buildReport(t.registry, [line]);
    expect(html).toContain('Learning from feedback (RL runs)');
    expect(html).toContain('step 80: reward 0.610, gold 0.610, KL 0.150');
    // A run recorded without goldPrompts (before the gold check was kept) says nothing about its gold: '-'.
    expect(html).toContain(`<td>v${version}</td><td>steps</td><td>0.150</td><td>-</td><td>${digest.slice(0, 12)}</td>`);
  });

  it('is append-only for the application role', async () => {
    await expect(t.app.sql`update rl_runs set final_kl = 0`).rejects.toThrow(/permission denied/);
    await expect(t.app.sql`delete from rl_runs`).rejects.toThrow(/permission denied/);
  });
});
