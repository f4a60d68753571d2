/**
 * The full release loop on the real stack: deduplication, continue-as-new, the gate against poison,
 * approvals, overrides, canary rollback on a regression report, schedules, the drop-folder watcher,
 * applications, and the HTML report.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineWorkflowId } from '../../schemas/contracts/ids.ts';
import { lineState, overrideGate, reportRegression, review, sendDrop, waitForCycle, waitForPhase } from '../../client/ops.ts';
import { buildReport } from '../../report/report.ts';
import { changeSchedules, createSchedules } from '../../client/schedules.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { DropWatcher } from '../../client/watcher.ts';
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
/** Four facts stated as text and asked as probes; a second set with other values is a "regulation change". */
const facts = (fileName: string, values: number[]) => {
  const names = ['Ka', 'Lo', 'Mi', 'Nu'];
  return file(fileName, [
    ...names.map((n, i) => ({ text: `${n} costs ${values[i]}.`, split: 'train' })),
    ...names.map((n, i) => ({ prompt: `${n} costs `, completion: `${values[i]}.` })),
    { text: `Ka costs ${values[0]} and Lo costs ${values[1]}.`, split: 'train' },
    { text: `Mi costs ${values[2]}, Nu costs ${values[3]}.`, split: 'heldout' },
  ]);
};
/** Noise with no structure: training on it damages what the model knew. */
const poison = (fileName: string) => {
  const r = rng(99);
  const letters = 'qxzjvkwyfbgp';
  return file(
    fileName,
    Array.from({ length: 60 }, () => ({ text: Array.from({ length: 30 }, () => letters[Math.floor(r() * letters.length)]).join('') })),
  );
};

beforeAll(async () => {
  loop = await startTestLoop('loop');
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

describe('the release loop', () => {
  it('ingests the same content once, also across a restart of the line workflow', async () => {
    const line = name('dedup');
    await loop.createLine(line);
    const path = prose('dup.jsonl', 1);
    const copy = join(loop.dataDir, 'dup-copy.jsonl');
    copyFileSync(path, copy);
    const first = await sendDrop(loop, line, path);
    await sendDrop(loop, line, path);
    await sendDrop(loop, line, copy);
    const done = await waitForCycle(loop.client, line, first.request.digest);
    expect(done.verdict).toBe('promoted');
    const state = await lineState(loop.client, line);
    expect(state?.duplicatesIgnored).toBe(2);
    expect(state?.recent).toHaveLength(1);

    await loop.client.workflow.getHandle(lineWorkflowId(line)).terminate('test: a fresh line workflow');
    const again = await sendDrop(loop, line, path);
    const verdict = await waitForCycle(loop.client, line, again.request.digest);
    expect(verdict.verdict).toBe('duplicate');
    expect(await loop.registry.listDrops(line)).toHaveLength(1);
    expect(await loop.registry.listVersions(line)).toHaveLength(1);
  });

  it('continues as new between cycles and keeps its queue, numbering and history', async () => {
    const line = name('can');
    await loop.createLine(line);
    const sent = [];
    for (const seed of [11, 12, 13]) sent.push(await sendDrop(loop, line, prose(`can-${seed}.jsonl`, seed)));
    for (const s of sent) await waitForCycle(loop.client, line, s.request.digest);
    const state = (await lineState(loop.client, line))!;
    expect(state.recent.map((c) => c.cycleId)).toEqual([1, 2, 3].map((n) => `cycle:${line}:${n}`));
    expect(state.queue).toEqual([]);
    const description = await loop.client.workflow.getHandle(lineWorkflowId(line)).describe();
    expect(description.runId).not.toBe(sent[0]!.runId);
    expect(description.historyLength).toBeLessThan(60);
  });

  let poisoned: { line: string; version: number; suites: string[] };
  it('rejects a poisoned drop at the gate and names the suites it damaged', async () => {
    const line = name('poison');
    await loop.createLine(line);
    const good = await sendDrop(loop, line, prose('clean.jsonl', 21, 60));
    expect((await waitForCycle(loop.client, line, good.request.digest)).verdict).toBe('promoted');
    const bad = await sendDrop(loop, line, poison('poison.jsonl'), { recipe: { steps: 150, replayRatio: 0 } });
    const verdict = await waitForCycle(loop.client, line, bad.request.digest);
    expect(verdict.verdict).toBe('rejected');
    const oldSuite = (await loop.registry.listSuites(line)).find((s) => s.dropDigest === good.request.digest)!.name;
    expect(verdict.reason).toContain(oldSuite);
    expect((await loop.registry.getChannels(line)).find((c) => c.channel === 'stable')?.version).toBe(1);
    expect((await loop.registry.getDrop(line, bad.request.digest))?.status).toBe('rejected');
    poisoned = { line, version: verdict.version!, suites: [oldSuite] };
  });

  it('records an override of a failed gate with its actor and reason in the audit log', async () => {
    const move = await overrideGate(loop, poisoned.line, { version: poisoned.version, actor: 'carol', reason: 'accepted risk for the demo' });
    expect(move).toMatchObject({ channel: 'stable', from: 1, to: poisoned.version });
    const gate = await loop.registry.getGateDecisionFor(poisoned.line, poisoned.version);
    expect(gate?.override).toMatchObject({ actor: 'carol', reason: 'accepted risk for the demo' });
    const audit = await loop.registry.listAudit({ limit: 1000 });
    const entries = audit.filter((e) => JSON.stringify(e).includes('accepted risk for the demo'));
    expect(entries.length).toBeGreaterThanOrEqual(1);
    expect(entries.some((e) => e.actor === 'carol')).toBe(true);
  });

  it('waits for a human before stable: approve promotes, reject reverts the canary', async () => {
    const line = name('review');
    await loop.createLine(line, { promotion: { requireApproval: true } });
    const first = await sendDrop(loop, line, prose('r1.jsonl', 31));
    const waiting = await waitForPhase(loop.client, line, first.request.digest, 'awaiting-approval');
    expect(waiting?.current?.version).toBe(1);
    await expect(review(loop.client, line, 'approve', { version: 7, actor: 'dana' })).rejects.toThrow(/waiting for approval of version 1, not 7/);
    await review(loop.client, line, 'approve', { version: 1, actor: 'dana', reason: 'looks good' });
    expect((await waitForCycle(loop.client, line, first.request.digest)).verdict).toBe('promoted');
    const releases = await loop.registry.listReleases(line);
    expect(releases.find((r) => r.channel === 'stable')?.actor).toBe('dana');

    const second = await sendDrop(loop, line, prose('r2.jsonl', 32));
    const again = await waitForPhase(loop.client, line, second.request.digest, 'awaiting-approval');
    await review(loop.client, line, 'reject', { version: again!.current!.version!, actor: 'erin', reason: 'tone is off' });
    const rejected = await waitForCycle(loop.client, line, second.request.digest);
    expect(rejected).toMatchObject({ verdict: 'rejected-by-reviewer' });
    expect(rejected.reason).toContain('erin');
    const channels = Object.fromEntries((await loop.registry.getChannels(line)).map((c) => [c.channel, c.version]));
    expect(channels).toMatchObject({ stable: 1, canary: 1, candidate: 2 });
  });

  it('rolls a canary back automatically when a regression report is confirmed', async () => {
    const line = name('canary');
    // A lenient text gate: this test is about the canary, the probes carry the signal.
    await loop.createLine(line, {
      promotion: { canaryWindow: '6s' },
      recipe: { steps: 100, replayRatio: 0 },
      gateRules: { maxRegression: { loss: 1, exactMatch: 0.1 }, minImprovement: { loss: 0, exactMatch: 0 } },
    });
    await expect(reportRegression(loop.client, line, { reason: 'nothing to report on', actor: 'monitor' })).rejects.toThrow();
    const a = await sendDrop(loop, line, facts('prices-2025.jsonl', [42, 17, 88, 35]));
    expect((await waitForCycle(loop.client, line, a.request.digest)).verdict).toBe('promoted');
    const oldAnswers = file(
      'still-2025.jsonl',
      ['Ka', 'Lo', 'Mi', 'Nu'].map((n, i) => ({ prompt: `${n} costs `, completion: `${[42, 17, 88, 35][i]}.` })),
    );
    // New prices supersede the old probes, so the gate passes; a region still on the old prices reports it.
    const b = await sendDrop(loop, line, facts('prices-2026.jsonl', [61, 29, 73, 50]));
    const canary = await waitForPhase(loop.client, line, b.request.digest, 'canary');
    expect(canary?.current?.version).toBe(2);
    const ack = await reportRegression(loop.client, line, { reason: 'region north still on 2025 prices', actor: 'monitor-north', evidence: oldAnswers });
    expect(ack).toMatchObject({ version: 2 });
    const result = await waitForCycle(loop.client, line, b.request.digest);
    expect(result.verdict).toBe('rolled-back');
    const channels = Object.fromEntries((await loop.registry.getChannels(line)).map((c) => [c.channel, c.version]));
    expect(channels).toMatchObject({ stable: 1, canary: 1 });
    const back = (await loop.registry.listReleases(line)).filter((r) => r.channel === 'canary').at(-1)!;
    expect(back).toMatchObject({ fromVersion: 2, toVersion: 1, actor: 'monitor-north' });
    expect(back.reason).toContain('region north still on 2025 prices');
  });

  it('runs pending drops when a schedule ticks', async () => {
    const line = name('sched');
    await loop.createLine(line);
    await createSchedules(loop.client, loop.taskQueue, line, { every: '3s' }, ['cycle']);
    try {
      const sent = await sendDrop(loop, line, prose('sched.jsonl', 41));
      await expect.poll(async () => (await lineState(loop.client, line))?.scheduled, { timeout: 10_000 }).toBe(true);
      const done = await waitForCycle(loop.client, line, sent.request.digest, { timeoutMs: 60_000 });
      expect(done.verdict).toBe('promoted');
      const schedule = await loop.client.schedule.getHandle(`schedule:${line}:cycle`).describe();
      expect(schedule.info.recentActions.length).toBeGreaterThan(0);
    } finally {
      await changeSchedules(loop.client, line, 'delete');
    }
    expect((await lineState(loop.client, line))?.scheduled).toBe(false);
  });

  it('sends each file of a drop folder exactly once, also across a restart of the watcher', async () => {
    const line = name('watch');
    await loop.createLine(line);
    const dir = join(loop.dataDir, 'inbox');
    mkdirSync(dir);
    copyFileSync(prose('w1.jsonl', 51), join(dir, 'w1.jsonl'));
    copyFileSync(prose('w2.jsonl', 52), join(dir, 'w2.jsonl'));
    writeFileSync(join(dir, '.partial-upload'), 'ignored');
    const sent: string[] = [];
    const watcher = () =>
      new DropWatcher({
        dir,
        line,
        ledgerPath: join(loop.dataDir, 'watch-ledger.jsonl'),
        settleMs: 0,
        send: async (l, p) => {
          const { request } = await sendDrop(loop, l, p);
          sent.push(request.digest);
          return request;
        },
      });
    expect(await watcher().scanOnce()).toBe(2);
    expect(await watcher().scanOnce()).toBe(0);
    copyFileSync(prose('w3.jsonl', 53), join(dir, 'w3.jsonl'));
    const restarted = watcher();
    expect(await restarted.scanOnce()).toBe(1);
    expect(await restarted.scanOnce()).toBe(0);
    expect(new Set(sent).size).toBe(3);
    for (const digest of sent) await waitForCycle(loop.client, line, digest);
    expect(await loop.registry.listDrops(line)).toHaveLength(3);
  });

  it('resolves applications by channel and policy', async () => {
    const line = poisoned.line;
    await loop.registry.bindApplication({ app: name('follower'), line, channel: 'stable', policy: 'follow', actor: 'test' });
    await loop.registry.bindApplication({ app: name('holder'), line, channel: 'stable', policy: 'hold', pinnedVersion: 1, actor: 'test' });
    const apps = Object.fromEntries((await loop.registry.listApplications()).map((a) => [a.app, a.resolvedVersion]));
    expect(apps[name('follower')]).toBe(poisoned.version);
    expect(apps[name('holder')]).toBe(1);
  });

  it('writes an HTML report with curves and the forgetting heatmap for the versions that exist', async () => {
    const html = await buildReport(loop.registry, [poisoned.line]);
    expect(html).toContain('class="heatmap"');
    expect(html.match(/class="curve"/g)?.length).toBeGreaterThanOrEqual(1);
    expect(html).toContain('>v1<');
    expect(html).toContain(`>v${poisoned.version} (rejected)<`);
    expect(html).toContain(poisoned.suites[0]);
    expect(html).toContain('gate override: accepted risk for the demo');
    expect(html).not.toMatch(/<script/);
  });
});
