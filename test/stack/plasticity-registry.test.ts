/** Plasticity records in the registry (migration 0004): once per version, append-only, in the lineage and `perennial versions --json`. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReport } from '../../report/report.ts';
import { InvalidInputError } from '../../schemas/contracts/errors.ts';
import { openTestRegistry, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
beforeAll(async () => {
  t = await openTestRegistry('registry_plasticity');
});
afterAll(async () => {
  await t?.close();
});

describe('plasticity records', () => {
  it('records a version once, keeps the first record on a retry, and shows it in the lineage', async () => {
    const line = 'plastic';
    await seedLine(t.registry, line);
    const { version } = await seedVersion(t, line);
    const { version: second } = await seedVersion(t, line, { parent: version });
    const first = await t.registry.recordPlasticity({ line, version, record: { ratio: 0.93, dormantFraction: 0.01 }, backend: 'cpu' });
    expect(first).toMatchObject({ line, version, record: { ratio: 0.93, dormantFraction: 0.01 }, backend: 'cpu' });
    const retry = await t.registry.recordPlasticity({ line, version, record: { ratio: 0.5 }, backend: 'wasm' });
    expect(retry.record).toEqual({ ratio: 0.93, dormantFraction: 0.01 });
    expect(await t.registry.getPlasticity(line)).toEqual([expect.objectContaining({ version, record: { ratio: 0.93, dormantFraction: 0.01 } })]);
    expect((await t.registry.lineage(line, version)).plasticity).toEqual({ ratio: 0.93, dormantFraction: 0.01 });
    expect((await t.registry.lineage(line, second)).plasticity).toBeUndefined();
    const audit = await t.app.sql`select count(*)::int as n from audit_log where action = 'plasticity.record'`;
    expect(audit[0]!.n).toBe(1);
    await expect(t.registry.recordPlasticity({ line, version: second, record: [] as never })).rejects.toThrow(InvalidInputError);
    // The report draws the curve over versions with the fresh model's 1 as its reference.
    const html = await buildReport(t.registry, [line]);
    expect(html).toContain('Plasticity across versions');
    expect(html).toContain('ratio to a fresh model, dashed: fresh = 1');
    expect(html).toContain('v1: 0.930 (bound 1.000)');
  });

  it('is append-only for the application role', async () => {
    await expect(t.app.sql`update plasticity_records set backend = 'forged'`).rejects.toThrow(/permission denied/);
    await expect(t.app.sql`delete from plasticity_records`).rejects.toThrow(/permission denied/);
  });
});
