/** Races settled by the database: version numbers without gaps or duplicates, channel moves as compare-and-swap. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelConflictError } from '../../schemas/contracts/errors.ts';
import { FIXTURE_LINE, openTestRegistry, seedDrop, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;

beforeAll(async () => {
  t = await openTestRegistry('registry_races', { max: 40 });
});
afterAll(async () => {
  await t?.close();
});

describe('version allocation', () => {
  it('gives 32 concurrent allocations on one line the numbers 1..32, no gap, no duplicate', async () => {
    await seedLine(t.registry, 'alloc');
    const keys = Array.from({ length: 32 }, (_, i) => `alloc-run-${i}`);
    const weights = await t.store.put(randomBytes(1024));
    for (const key of keys) await t.registry.startTrainingRun({ line: 'alloc', key, parentVersion: null, recipe: FIXTURE_LINE.recipe, seed: 1, drops: [] });

    const results = await Promise.all(
      keys.map((key) =>
        t.registry.createVersion({
          line: 'alloc',
          trainingRunKey: key,
          parentVersion: null,
          weightsDigest: weights,
          files: [],
          recipe: FIXTURE_LINE.recipe,
          drops: [],
          codeRevision: 'rev',
          seed: 1,
          backend: 'cpu',
          compute: { tokens: 1, flops: 1, wallMs: 1 },
        }),
      ),
    );
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    const listed = await t.registry.listVersions('alloc');
    expect(listed.map((v) => v.version)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    // Each run got its own version, and the manifests (which name the number) are all different.
    expect(new Set(results.map((r) => r.manifestDigest)).size).toBe(32);
    expect((await t.registry.getLine('alloc')).latestVersion).toBe(32);
  });

  it('returns the same version to a retried createVersion, even when the retries race', async () => {
    await seedLine(t.registry, 'retry');
    const first = await seedVersion(t, 'retry');
    const again = await Promise.all(
      Array.from({ length: 6 }, () =>
        t.registry.createVersion({
          line: 'retry',
          trainingRunKey: first.key,
          parentVersion: null,
          weightsDigest: first.weightsDigest,
          files: [],
          recipe: FIXTURE_LINE.recipe,
          drops: [],
          codeRevision: 'rev',
          seed: 7,
          backend: 'cpu',
          compute: { tokens: 1, flops: 1, wallMs: 1 },
        }),
      ),
    );
    for (const r of again) expect(r).toMatchObject({ version: first.version, manifestDigest: first.manifestDigest, existed: true });
    expect((await t.registry.listVersions('retry')).length).toBe(1);
  });

  it('rolls back a failed allocation without leaving a gap', async () => {
    await seedLine(t.registry, 'gapless');
    await seedVersion(t, 'gapless');
    const key = 'gapless-bad';
    await t.registry.startTrainingRun({ line: 'gapless', key, parentVersion: null, recipe: {}, seed: 1, drops: [] });
    const weights = await t.store.put(randomBytes(64));
    // An unknown drop fails inside the transaction, after validation of the input shape.
    await expect(
      t.registry.createVersion({
        line: 'gapless',
        trainingRunKey: key,
        parentVersion: null,
        weightsDigest: weights,
        recipe: {},
        drops: ['f'.repeat(64)],
        codeRevision: 'rev',
        seed: 1,
        backend: 'cpu',
        compute: { tokens: 0, flops: 0, wallMs: 0 },
      }),
    ).rejects.toThrow(/drops not recorded/);
    expect((await seedVersion(t, 'gapless')).version).toBe(2);
  });
});

describe('channel moves', () => {
  it('lets exactly one of 16 concurrent promotions on one epoch win; the others get a conflict naming both epochs', async () => {
    await seedLine(t.registry, 'race');
    const drop = await seedDrop(t.registry, 'race');
    const versions: number[] = [];
    for (let i = 0; i < 16; i++) versions.push((await seedVersion(t, 'race', { drops: [drop] })).version);
    const [stable] = (await t.registry.getChannels('race')).filter((c) => c.channel === 'stable');
    expect(stable).toMatchObject({ version: null, epoch: 0 });
    const auditBefore = (await t.registry.listAudit({ limit: 100_000 })).filter((e) => e.action === 'channel.move').length;

    const outcomes = await Promise.allSettled(
      versions.map((v) =>
        t.registry.moveChannel({ line: 'race', channel: 'stable', to: v, expectedEpoch: 0, actor: `racer-${v}`, reason: 'race test', requestKey: `race-${v}` }),
      ),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(15);
    for (const l of lost) {
      expect(l.reason).toBeInstanceOf(ChannelConflictError);
      expect((l.reason as Error).message).toMatch(/channel race@stable moved: expected epoch 0, but it is at epoch 1/);
    }

    const releases = await t.registry.listReleases('race', { channel: 'stable' });
    expect(releases).toHaveLength(1);
    const winner = (won[0] as PromiseFulfilledResult<{ epoch: number; releaseId: number; to: number }>).value;
    expect(releases[0]).toMatchObject({ id: winner.releaseId, epoch: 1, fromVersion: null, toVersion: winner.to });
    const moves = (await t.registry.listAudit({ limit: 100_000 })).filter((e) => e.action === 'channel.move');
    expect(moves.length - auditBefore).toBe(1);
    expect(moves.at(-1)).toMatchObject({ subject: 'race@stable', details: { to: winner.to, epoch: 1, releaseId: winner.releaseId } });
    expect((await t.registry.getChannels('race')).find((c) => c.channel === 'stable')).toMatchObject({ version: winner.to, epoch: 1 });
  });

  it('returns the committed result to a retried move with the same request key, and refuses a stale epoch', async () => {
    await seedLine(t.registry, 'idem');
    const v1 = (await seedVersion(t, 'idem')).version;
    const v2 = (await seedVersion(t, 'idem', { parent: v1 })).version;
    const move = { line: 'idem', channel: 'canary', to: v1, expectedEpoch: 0, actor: 'ops', reason: 'first', requestKey: 'idem-1' };
    const first = await t.registry.moveChannel(move);
    const retries = await Promise.all([t.registry.moveChannel(move), t.registry.moveChannel(move)]);
    for (const r of retries) expect(r).toEqual(first);
    expect(await t.registry.listReleases('idem')).toHaveLength(1);

    await expect(t.registry.moveChannel({ ...move, to: v2, requestKey: 'idem-2' })).rejects.toThrow(ChannelConflictError);
    const second = await t.registry.moveChannel({ ...move, to: v2, expectedEpoch: first.epoch, requestKey: 'idem-2' });
    expect(second).toMatchObject({ epoch: 2, from: v1, to: v2 });
    // Rollback is a move back, recorded like any other.
    const back = await t.registry.moveChannel({ ...move, to: v1, expectedEpoch: 2, reason: 'rollback', requestKey: 'idem-3' });
    expect(back).toMatchObject({ epoch: 3, from: v2, to: v1 });
    expect((await t.registry.listReleases('idem')).map((r) => [r.fromVersion, r.toVersion, r.epoch])).toEqual([
      [null, v1, 1],
      [v1, v2, 2],
      [v2, v1, 3],
    ]);
  });

  it('refuses a promotion on a failed gate unless a person overrode it', async () => {
    await seedLine(t.registry, 'gated');
    const champion = (await seedVersion(t, 'gated')).version;
    const candidate = (await seedVersion(t, 'gated', { parent: champion })).version;
    const failed = await t.registry.recordGateDecision({
      line: 'gated',
      key: 'gate-1',
      candidate,
      champion,
      verdict: 'fail',
      suites: [{ suite: 'general', reason: 'loss rose 9%' }],
    });
    expect(await t.registry.recordGateDecision({ line: 'gated', key: 'gate-1', candidate, champion, verdict: 'fail', suites: [] })).toBe(failed);
    const move = {
      line: 'gated',
      channel: 'stable',
      to: candidate,
      expectedEpoch: 0,
      actor: 'loop',
      reason: 'promote',
      gateDecisionId: failed,
      requestKey: 'gated-1',
    };
    await expect(t.registry.moveChannel(move)).rejects.toThrow(/failed gated@2 and was not overridden/);
    await t.registry.overrideGateDecision({ id: failed, actor: 'alice', reason: 'known flaky suite' });
    expect(await t.registry.moveChannel(move)).toMatchObject({ epoch: 1, to: candidate });
    expect(await t.registry.getGateDecisionFor('gated', candidate)).toMatchObject({
      verdict: 'fail',
      override: { actor: 'alice', reason: 'known flaky suite' },
    });
  });
});

describe('the audit chain under concurrency', () => {
  it('keeps one unbroken chain when 40 audited writes race', async () => {
    await seedLine(t.registry, 'chain');
    const before = (await t.registry.listAudit({ limit: 100_000 })).length;
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => t.registry.recordEvent({ actor: `writer-${i}`, action: 'race.note', line: 'chain', payload: { i } })),
    );
    const entries = await t.registry.listAudit({ limit: 100_000 });
    expect(entries).toHaveLength(before + 40);
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    expect(new Set(entries.filter((e) => e.action === 'race.note').map((e) => e.details.i))).toHaveProperty('size', 40);
    const result = await t.registry.verifyAudit();
    expect(result).toMatchObject({ ok: true, entries: before + 40 });
  });
});
