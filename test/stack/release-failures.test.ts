/**
 * How cycles end when they do not promote, on the real stack: a training run that diverges, a cycle that fails
 * outright, a rejected or conflicting candidate on canary, a line's first version against what it replaces,
 * and probes superseded by the order drops arrived in.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.ts';
import { sha256Hex } from '../../domain/drops.ts';
import { resolveSuites } from '../../domain/suites.ts';
import { lineState, review, rollback, sendDrop, waitForCycle, waitForPhase } from '../../client/ops.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const tag = Date.now().toString(36).slice(-5);
const name = (base: string) => `${base}-${tag}`;

function file(fileName: string, records: object[]): string {
  const path = join(loop.dataDir, fileName);
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}
const prose = (fileName: string, seed: number, n = 40) => file(fileName, generalText(rng(seed), n));
const facts = (fileName: string, values: number[]) =>
  file(fileName, [
    ...['Ka', 'Lo', 'Mi', 'Nu'].map((n, i) => ({ text: `${n} costs ${values[i]}.`, split: 'train' })),
    ...['Ka', 'Lo', 'Mi', 'Nu'].map((n, i) => ({ prompt: `${n} costs `, completion: `${values[i]}.` })),
  ]);
const poison = (fileName: string) => {
  const r = rng(99);
  const letters = 'qxzjvkwyfbgp';
  return file(
    fileName,
    Array.from({ length: 60 }, () => ({ text: Array.from({ length: 30 }, () => letters[Math.floor(r() * letters.length)]).join('') })),
  );
};

async function channelsOf(line: string) {
  return Object.fromEntries((await loop.registry.getChannels(line)).map((c) => [c.channel, c.version]));
}

async function snapshot(line: string) {
  return createActivities(loop.deps).lineSnapshot({ line });
}

beforeAll(async () => {
  loop = await startTestLoop('failures');
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

describe('ways out of a cycle', () => {
  it('ends a diverged training at once with a verdict, fails its drop, goes on, and takes the drop again', async () => {
    const line = name('diverge');
    await loop.createLine(line);
    const a = await sendDrop(loop, line, prose('d1.jsonl', 61));
    expect((await waitForCycle(loop.client, line, a.request.digest)).verdict).toBe('promoted');

    // The recipe's learning rate is capped at 1, which the tiny model survives; an L2 pull this strong overflows
    // the gradient, the weights turn NaN, and so does the loss (at step 3 on wasm, every time; at step 2 on native
    // TensorFlow, whose AdamW computes in float32 on the device instead of in float64 on the host).
    const diverging = prose('d2.jsonl', 62);
    const b = await sendDrop(loop, line, diverging, { recipe: { l2Pull: 1e300 } });
    const c = await sendDrop(loop, line, prose('d3.jsonl', 63));
    const failed = await waitForCycle(loop.client, line, b.request.digest, { timeoutMs: 3 * 60_000 });
    expect(failed.verdict).toBe('rejected');
    expect(failed.reason).toMatch(/^training diverged at step [23] \(loss (nan|inf)\)$/);
    expect(failed.version).toBeUndefined();

    // One attempt: the failure is typed and non-retryable, not retried for ten minutes.
    const history = await loop.client.workflow.getHandle(failed.cycleId).fetchHistory();
    const started = history.events!.filter((e) => e.activityTaskStartedEventAttributes);
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainCandidate');
    expect(scheduled).toHaveLength(1);
    const trainingStart = started.find((e) => e.activityTaskStartedEventAttributes!.scheduledEventId?.toString() === scheduled[0]!.eventId?.toString())!;
    expect(trainingStart.activityTaskStartedEventAttributes!.attempt).toBe(1);
    const failure = history.events!.find((e) => e.activityTaskFailedEventAttributes)!.activityTaskFailedEventAttributes!.failure!;
    expect(failure.applicationFailureInfo).toMatchObject({ type: 'TrainingDivergedError', nonRetryable: true });

    const drop = await loop.registry.getDrop(line, b.request.digest);
    expect(drop).toMatchObject({ status: 'failed' });
    expect(drop!.reason).toContain(failed.reason);
    expect((await loop.registry.getTrainingRun(`${failed.cycleId}:${b.request.digest.slice(0, 16)}`))?.status).toBe('failed');

    // The line took its next drop; the failed one feeds neither replay nor the gate.
    const next = await waitForCycle(loop.client, line, c.request.digest);
    expect(next).toMatchObject({ verdict: 'promoted', version: 2 });
    const snap = await snapshot(line);
    expect(snap.replay).not.toContain(b.request.digest);
    expect(snap.suites.map((s) => s.dropDigest)).not.toContain(b.request.digest);

    // Sent again with a sane recipe, it is not a duplicate: it runs a cycle of its own.
    const resent = await sendDrop(loop, line, diverging, { recipe: { l2Pull: 0.01 } });
    expect(resent.priorCycles).toEqual([failed.cycleId]);
    const again = await waitForCycle(loop.client, line, b.request.digest, { except: resent.priorCycles });
    expect(again.verdict).toBe('promoted');
    expect(again.cycleId).not.toBe(failed.cycleId);
    expect((await loop.registry.getDrop(line, b.request.digest))?.status).toBe('accepted');
    expect((await snapshot(line)).replay).toContain(b.request.digest);

    // A recipe override the trainer refuses (a floor above the peak learning rate) is as final as a divergence.
    const refused = await sendDrop(loop, line, prose('d4.jsonl', 64), { recipe: { learningRate: 1e-4, minLearningRate: 2e-4 } });
    const verdict = await waitForCycle(loop.client, line, refused.request.digest);
    expect(verdict).toMatchObject({ verdict: 'rejected', reason: 'recipe: minLearningRate must be between 0 and learningRate, got 0.0002' });
    expect((await loop.registry.getDrop(line, refused.request.digest))?.status).toBe('failed');
  }, 240_000);

  it('fails the drop of a cycle that ends in an error, moves canary back to stable, and lets the drop be sent again', async () => {
    const line = name('broken');
    await loop.createLine(line, { promotion: { requireApproval: true } });
    const a = await sendDrop(loop, line, prose('b1.jsonl', 71));
    await waitForPhase(loop.client, line, a.request.digest, 'awaiting-approval');
    await review(loop.client, line, 'approve', { version: 1, actor: 'dana' });
    expect((await waitForCycle(loop.client, line, a.request.digest)).verdict).toBe('promoted');

    const second = prose('b2.jsonl', 72);
    const b = await sendDrop(loop, line, second);
    const waiting = await waitForPhase(loop.client, line, b.request.digest, 'awaiting-approval');
    expect(await channelsOf(line)).toMatchObject({ stable: 1, canary: 2 });
    await loop.client.workflow.getHandle(waiting!.current!.cycleId).terminate('test: a cycle that dies');
    const failed = await waitForCycle(loop.client, line, b.request.digest);
    expect(failed.verdict).toBe('rejected');
    expect(failed.reason).toMatch(/^the cycle failed: /);
    expect((await loop.registry.getDrop(line, b.request.digest))?.status).toBe('failed');
    expect(await channelsOf(line)).toMatchObject({ stable: 1, canary: 1, candidate: 2 });
    const snap = await snapshot(line);
    expect(snap.replay).not.toContain(b.request.digest);
    expect(snap.suites.map((s) => s.dropDigest)).not.toContain(b.request.digest);

    const resent = await sendDrop(loop, line, second);
    await expect.poll(async () => (await lineState(loop.client, line))?.current?.phase, { timeout: 3 * 60_000, interval: 300 }).toBe('awaiting-approval');
    await review(loop.client, line, 'approve', { version: 3, actor: 'dana' });
    expect((await waitForCycle(loop.client, line, b.request.digest, { except: resent.priorCycles })).verdict).toBe('promoted');
    expect((await loop.registry.getDrop(line, b.request.digest))?.status).toBe('accepted');

    // A conflict (an operator moved stable meanwhile) does not leave the candidate on canary either.
    const c = await sendDrop(loop, line, prose('b3.jsonl', 73));
    await waitForPhase(loop.client, line, c.request.digest, 'awaiting-approval');
    expect(await channelsOf(line)).toMatchObject({ stable: 3, canary: 4 });
    await rollback(loop, line, { to: 1, reason: 'operator: back to v1', actor: 'olga' });
    await review(loop.client, line, 'approve', { version: 4, actor: 'dana' });
    expect((await waitForCycle(loop.client, line, c.request.digest)).verdict).toBe('conflict');
    expect(await channelsOf(line)).toMatchObject({ stable: 1, canary: 1, candidate: 4 });
  }, 240_000);

  it('clears canary when a first version is rejected, as there is no released version to go back to', async () => {
    const line = name('first-reject');
    await loop.createLine(line, { promotion: { requireApproval: true } });
    const a = await sendDrop(loop, line, prose('f1.jsonl', 81));
    await waitForPhase(loop.client, line, a.request.digest, 'awaiting-approval');
    expect(await channelsOf(line)).toMatchObject({ canary: 1 });
    await review(loop.client, line, 'reject', { version: 1, actor: 'erin', reason: 'not yet' });
    expect((await waitForCycle(loop.client, line, a.request.digest)).verdict).toBe('rejected-by-reviewer');
    expect(await channelsOf(line)).toMatchObject({ candidate: 1, canary: null, stable: null });
    const cleared = (await loop.registry.listReleases(line, { channel: 'canary' })).at(-1)!;
    expect(cleared).toMatchObject({ fromVersion: 1, toVersion: null, actor: 'erin' });
    expect((await lineState(loop.client, line))?.channels.canary).toBeUndefined();
  });

  it("holds a foundation line's first version to an untrained model of its shape", async () => {
    // Two steps at a tiny learning rate: the candidate is the untrained model, within the loss floor of 6.
    const idle = name('idle');
    await loop.createLine(idle, { recipe: { steps: 2, learningRate: 1e-6, minLearningRate: 1e-7, warmupSteps: 1 } });
    const i = await sendDrop(loop, idle, prose('i1.jsonl', 91));
    const lazy = await waitForCycle(loop.client, idle, i.request.digest);
    expect(lazy.verdict).toBe('rejected');
    expect(lazy.reason).toMatch(/^failed on /);
    const gate = (await loop.registry.getGateDecisionFor(idle, 1))!;
    const suite = (gate.suites as { suite: string; champion: number; candidate: number; pass: boolean; reason: string }[])[0]!;
    expect(suite.pass).toBe(false);
    expect(suite.champion).toBeGreaterThan(5);
    expect(suite.reason).toContain('did not improve enough on the new data');

    const base = name('base');
    await loop.createLine(base);
    const g = await sendDrop(loop, base, prose('g1.jsonl', 92, 60));
    const promoted = await waitForCycle(loop.client, base, g.request.digest);
    expect(promoted.verdict).toBe('promoted');
    expect(promoted.reason).toContain('against an untrained model of its shape');
    foundation = { line: base, suite: (await loop.registry.listSuites(base))[0]!.name };
  }, 240_000);

  let foundation: { line: string; suite: string };
  it("holds an application line's first version to its foundation's suites as well", async () => {
    const { line: base, suite: baseSuite } = foundation;
    const app = name('app');
    await loop.createLine(app, { foundation: base });
    const bad = await sendDrop(loop, app, poison('p1.jsonl'), { recipe: { steps: 150, replayRatio: 0 } });
    const rejected = await waitForCycle(loop.client, app, bad.request.digest);
    expect(rejected.verdict).toBe('rejected');
    expect(rejected.reason).toContain(baseSuite);

    const app2 = name('app2');
    await loop.createLine(app2, { foundation: base });
    const good = await sendDrop(loop, app2, prose('p2.jsonl', 93));
    const ok = await waitForCycle(loop.client, app2, good.request.digest);
    expect(ok).toMatchObject({ verdict: 'promoted' });
    expect(ok.reason).toContain(`against an untrained model and ${base}@1`);
  }, 240_000);

  it('supersedes probes by the order their drops were accepted in, not by file name', async () => {
    const line = name('order');
    await loop.createLine(line);
    const acts = createActivities(loop.deps);
    // The later drop's name sorts first.
    const drops = [
      { source: 'zz-prices-2025', path: facts('zz-prices-2025.jsonl', [42, 17, 88, 35]) },
      { source: 'aa-prices-2026', path: facts('aa-prices-2026.jsonl', [61, 29, 73, 50]) },
    ];
    const requests = drops.map((d) => ({ path: d.path, digest: sha256Hex(readFileSync(d.path)), source: d.source }));
    for (const [n, request] of requests.entries()) expect((await acts.ingestDrop({ line, request, key: `order-${n}` })).status).toBe('accepted');
    const resolved = async () => {
      const snap = await snapshot(line);
      const probeSuites = snap.suites.filter((s) => s.kind === 'probe');
      const data = await resolveSuites(snap.suites, loop.deps.drops);
      return probeSuites.map((s) => ({ name: s.name.slice(0, 14), ...(data.get(s.name) as { probes: unknown[]; superseded: number }) }));
    };
    const [older, newer] = await resolved();
    expect(older).toMatchObject({ name: 'zz-prices-2025', probes: [], superseded: 4 });
    expect(newer).toMatchObject({ name: 'aa-prices-2026', superseded: 0 });
    expect(newer!.probes).toHaveLength(4);

    // The 2025 drop's cycle fails and the operator sends it again: accepted anew, its answers are now the newest.
    expect(await loop.registry.failDrop(line, requests[0]!.digest, 'order-0', 'test: the cycle failed')).toMatchObject({ status: 'failed' });
    expect((await resolved()).map((s) => s.name)).toEqual(['aa-prices-2026']);
    expect((await acts.ingestDrop({ line, request: requests[0]!, key: 'order-2' })).status).toBe('accepted');
    const [first, last] = await resolved();
    expect(first).toMatchObject({ name: 'aa-prices-2026', probes: [], superseded: 4 });
    expect(last).toMatchObject({ name: 'zz-prices-2025', superseded: 0 });
  });
});
