/**
 * Worker faults on the real stack (PostgreSQL, a file-backed Temporal dev server and worker *processes* of
 * this file's own): SIGKILL of the training worker in the middle of training, and SIGKILL of every worker
 * while cycles are open on several lines. The heavy versions run in `npm run chaos`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChaosStack, type ChaosStack } from '../../scripts/chaos/harness.ts';
import { killAllWorkers, trainingWorkerKill, type TrainingKillResult } from '../../scripts/chaos/scenarios.ts';

let s: ChaosStack;
let killed: TrainingKillResult | undefined;

beforeAll(async () => {
  s = await startChaosStack({ name: 'workers' });
}, 180_000);
afterAll(async () => s?.close());

describe('a training worker SIGKILLed in the middle of training', () => {
  it('completes the cycle on a restarted worker, one version, nothing twice', { timeout: 240_000 }, async () => {
    // 400 tiny steps with a checkpoint every 80; the kill lands in the middle of the interval after step 160.
    killed = await trainingWorkerKill(s, { steps: 400, checkpointEvery: 80, killAt: 0.3 });
    expect(killed.problems).toEqual([]);
    expect(killed).toMatchObject({ verdict: 'promoted' });
    expect(killed.attempts).toBeGreaterThanOrEqual(2);
    expect(killed.restartedPid).not.toBe(killed.killedPid);
    expect(killed.killedAtStep).toBeGreaterThanOrEqual(160);
  });

  // The training worker sends heartbeats (with checkpoint digests) at most 250 ms apart, and the activity
  // reports the checkpoint step it resumed from.
  it('resumes from its last checkpoint: at most one checkpoint interval of steps redone', () => {
    expect(killed).toBeDefined();
    expect(killed!.resumeProblems).toEqual([]);
    expect(killed!.stepsRedone).toBeLessThanOrEqual(killed!.checkpointEvery);
    expect(killed!.resumedFromCheckpoint).toBeGreaterThan(0);
  });
});

describe('every worker SIGKILLed with cycles open', () => {
  it('completes all open cycles after a restart, with no duplicate version, release or audit entry', { timeout: 300_000 }, async () => {
    const r = await killAllWorkers(s, { lines: 3, drops: 1, steps: 200, timeoutMs: 240_000 });
    expect(r.problems).toEqual([]);
    expect(r.detail.killed).toBe(2);
    expect(r.accounting).toMatchObject({ dropsIn: 3, cycles: 3, accountedFor: 3 });
    expect(r.duplicates.duplicates).toEqual([]);
    expect(r.duplicates.counts.versions).toBe(3);
  });

  it('counted each fault as injected and survived', () => {
    expect(Object.fromEntries(s.ledger.counts)).toEqual({
      'training-worker-sigkill': { injected: 1, survived: 1 },
      'all-workers-sigkill': { injected: 1, survived: 1 },
    });
  });
});
