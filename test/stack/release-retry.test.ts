/**
 * Release steps run again after they committed (a local activity re-run on replay when its workflow task did not
 * complete, or retried after a lost answer), on a real registry: each reports the move its first run made. Before,
 * settling canary answered "nothing to move" the second time (canary had already left the version), so the cycle
 * reported its rejected candidate as still on canary; and a gate override reported stable as moving from the
 * version it moved to.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.ts';
import { activityDeps, openTestRegistry, seedLine, seedVersion, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let acts: ReturnType<typeof createActivities>;

beforeAll(async () => {
  t = await openTestRegistry('release_retry');
  acts = createActivities(activityDeps(t));
});
afterAll(async () => t?.close());

/** A line with stable at version 1 and canary at version 2 (whose gate failed). */
async function lineWithCanary(name: string) {
  await seedLine(t.registry, name);
  const v1 = await seedVersion(t, name);
  const v2 = await seedVersion(t, name, { parent: v1.version });
  await t.registry.moveChannel({ line: name, channel: 'stable', to: v1.version, expectedEpoch: 0, actor: 'test', reason: 'first', requestKey: `${name}:s1` });
  await t.registry.moveChannel({
    line: name,
    channel: 'canary',
    to: v2.version,
    expectedEpoch: 0,
    actor: 'test',
    reason: 'candidate',
    requestKey: `${name}:c2`,
  });
  await t.registry.recordGateDecision({ line: name, key: `${name}:gate`, candidate: v2.version, champion: v1.version, verdict: 'fail', suites: [] });
  return { v1: v1.version, v2: v2.version };
}

it('settling canary again reports the move its first run made', async () => {
  const { v1, v2 } = await lineWithCanary('settled');
  const req = { line: 'settled', version: v2, actor: 'perennial', reason: 'failed the gate', requestKey: 'cycle:settled:2/x:canary-settle' };
  const first = await acts.settleCanary(req);
  expect(first).toMatchObject({ channel: 'canary', from: v2, to: v1 });
  expect(await acts.settleCanary(req)).toEqual(first);
  expect((await t.registry.listReleases('settled', { channel: 'canary' })).length).toBe(2);
});

it('a gate override run again reports stable moving from the version before it', async () => {
  const { v1, v2 } = await lineWithCanary('overridden');
  const req = { line: 'overridden', version: v2, actor: 'carol', reason: 'accepted risk', requestKey: 'override:overridden:2' };
  const first = await acts.overrideGate(req);
  expect(first).toMatchObject({ channel: 'stable', from: v1, to: v2 });
  expect(await acts.overrideGate(req)).toEqual(first);
  expect((await t.registry.listReleases('overridden', { channel: 'stable' })).length).toBe(2);
});
