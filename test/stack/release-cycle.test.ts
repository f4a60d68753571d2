/**
 * The first release cycle on the real stack: a drop that is promoted, a drop the gate rejects, a rollback,
 * and a bad drop that is quarantined while the line keeps serving.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineState, rollback, sendDrop, waitForCycle } from '../../client/ops.ts';
import { startTestLoop, writeTextDrop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const suffix = Date.now().toString(36);
const line = `first-${suffix}`;

const writeDrop = (name: string, seed: number, paragraphs: number) => writeTextDrop(loop.dataDir, name, seed, paragraphs);

beforeAll(async () => {
  loop = await startTestLoop('cycle');
  await loop.createLine(line);
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

describe('a release cycle on real Temporal and PostgreSQL', () => {
  it('promotes a first drop to stable and records version, gate and release', async () => {
    const { request } = await sendDrop(loop, line, writeDrop('a.jsonl', 1, 40));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('promoted');
    expect(summary.version).toBe(1);

    const channels = await loop.registry.getChannels(line);
    expect(channels.find((c) => c.channel === 'stable')?.version).toBe(1);
    const drop = await loop.registry.getDrop(line, request.digest);
    expect(drop?.status).toBe('accepted');
    const evaluations = await loop.registry.getEvaluations(line, 1);
    expect(evaluations.length).toBeGreaterThan(0);
    expect(evaluations.every((e) => Number.isFinite((e.metrics as { loss?: number }).loss ?? (e.metrics as { exactMatch?: number }).exactMatch))).toBe(true);
    const releases = await loop.registry.listReleases(line);
    expect(releases.filter((r) => r.channel === 'stable').map((r) => r.toVersion)).toEqual([1]);
  });

  it('promotes a second drop trained from the champion', async () => {
    const { request } = await sendDrop(loop, line, writeDrop('b.jsonl', 2, 40));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('promoted');
    const v2 = await loop.registry.getVersion(line, summary.version!);
    expect(v2.parentVersion).toBe(1);
  });

  it('rejects a destructive update at the gate, naming the suites it damaged', async () => {
    // A learning rate two hundred times too high wrecks what the champion knew: the gate must catch it.
    const { request } = await sendDrop(loop, line, writeDrop('c.jsonl', 3, 40), { recipe: { learningRate: 1, gradClip: 1000, warmupSteps: 0, l2Pull: 0 } });
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('rejected');
    expect(summary.reason).toMatch(/failed on/);
    const stable = (await loop.registry.getChannels(line)).find((c) => c.channel === 'stable');
    expect(stable?.version).toBe(2);
    const drop = await loop.registry.getDrop(line, request.digest);
    expect(drop?.status).toBe('rejected');
    const gate = await loop.registry.getGateDecisionFor(line, summary.version!);
    expect(gate?.verdict).toBe('fail');
  });

  it('rolls stable back to an earlier version and records why', async () => {
    const move = await rollback(loop, line, { to: 1, reason: 'customer reports after v2', actor: 'alice' });
    expect(move).toMatchObject({ channel: 'stable', from: 2, to: 1 });
    const releases = await loop.registry.listReleases(line);
    const last = releases.filter((r) => r.channel === 'stable').at(-1)!;
    expect(last).toMatchObject({ fromVersion: 2, toVersion: 1, actor: 'alice' });
    expect(last.reason).toContain('customer reports after v2');
  });

  it('quarantines a bad drop with its reason and keeps accepting drops', async () => {
    const bad = join(loop.dataDir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{"text": "also fine"}\n{not json\n');
    const { request } = await sendDrop(loop, line, bad);
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('quarantined');
    expect(summary.reason).toContain(bad);
    expect(summary.reason).toContain('line 3');
    const drop = await loop.registry.getDrop(line, request.digest);
    expect(drop?.status).toBe('quarantined');
    const kept = join(loop.dataDir, 'quarantine', request.digest);
    expect(readFileSync(join(kept, 'content'), 'utf8')).toContain('{not json');
    expect(JSON.parse(readFileSync(join(kept, 'reason.json'), 'utf8')).reason).toContain('line 3');

    const missing = await sendDrop(loop, line, join(loop.dataDir, 'does-not-exist.jsonl'));
    const gone = await waitForCycle(loop.client, line, missing.request.digest);
    expect(gone.verdict).toBe('quarantined');
    expect(gone.reason).toContain('does not exist');
    expect(existsSync(join(loop.dataDir, 'quarantine', missing.request.digest, 'reason.json'))).toBe(true);

    const next = await sendDrop(loop, line, writeDrop('d.jsonl', 4, 40));
    const after = await waitForCycle(loop.client, line, next.request.digest);
    expect(['promoted', 'rejected']).toContain(after.verdict);
    expect(after.version).toBeGreaterThan(0);
    const state = await lineState(loop.client, line);
    expect(state?.current).toBeNull();
  });
});
