import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, FaultLedger, chaosVerdict, restartPoints, verdictExitCode, verdictLines } from '../../scripts/chaos/verdict.ts';

/** A ledger where every kind was injected and survived `n` times. */
function allSurvived(n = 1): FaultLedger {
  const l = new FaultLedger();
  for (const k of FAULT_KINDS) {
    l.injected(k, n);
    l.survived(k, n);
  }
  return l;
}

describe('the fault run verdict', () => {
  it('holds when every kind was injected and survived and nothing broke', () => {
    const v = chaosVerdict(allSurvived(), []);
    expect(v).toEqual({ ok: true, notInjected: [], problems: [] });
    expect(verdictLines(v)).toEqual(['every guarantee held']);
    expect(verdictExitCode(v)).toBe(0);
  });

  it('fails, exit non-zero, naming the kind, when a kind was injected 0 times (the quick run on a quiet machine)', () => {
    const l = new FaultLedger();
    for (const k of FAULT_KINDS.filter((k) => k !== 'worker-restart-under-load')) {
      l.injected(k);
      l.survived(k);
    }
    // The load run ended before its first restart: it still passes its checks, with 0 restarts survived.
    l.survived('worker-restart-under-load', 0);
    const v = chaosVerdict(l, []);
    expect(v.ok).toBe(false);
    expect(v.notInjected).toEqual(['worker-restart-under-load']);
    expect(verdictExitCode(v)).not.toBe(0);
    const lines = verdictLines(v);
    expect(lines).not.toContain('every guarantee held');
    expect(lines).toEqual(['guarantees broken (1):', '  - worker-restart-under-load: injected 0 times; a fault that was not injected was not survived']);
  });

  it('names every kind that was never injected, even one the ledger never heard of', () => {
    const l = new FaultLedger();
    l.injected('temporal-sigkill');
    l.survived('temporal-sigkill');
    const v = chaosVerdict(l, []);
    expect(v.notInjected).toEqual(FAULT_KINDS.filter((k) => k !== 'temporal-sigkill'));
    expect(v.problems).toHaveLength(FAULT_KINDS.length - 1);
  });

  it('fails when a kind was injected more often than it was survived', () => {
    const l = allSurvived();
    l.injected('postgres-restart');
    const v = chaosVerdict(l, []);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual(['postgres-restart: survived 1 of 2 injections']);
  });

  it('keeps the scenarios findings after the ledger reasons', () => {
    const l = allSurvived();
    l.counts.delete('all-workers-sigkill');
    const v = chaosVerdict(l, ['traversal: ../x escaped']);
    expect(v.problems).toEqual(['all-workers-sigkill: injected 0 times; a fault that was not injected was not survived', 'traversal: ../x escaped']);
    expect(verdictExitCode(v)).toBe(1);
  });
});

describe('the load run restart points (tied to completed cycles, not to wall time)', () => {
  it('spreads the restarts over the run, each after the k-th completed cycle and before the last', () => {
    expect(restartPoints(12, 3)).toEqual([3, 6, 9]); // the quick run: 6 lines x 2 drops
    expect(restartPoints(60, 6)).toEqual([8, 17, 25, 34, 42, 51]); // the full run: 20 lines x 3 drops
    expect(restartPoints(8, 2)).toEqual([2, 5]); // the stack test
  });

  it('always leaves a cycle open at every point, however few cycles there are', () => {
    for (let total = 1; total <= 40; total++)
      for (let n = 0; n <= 8; n++) {
        const points = restartPoints(total, n);
        expect(points).toHaveLength(n);
        for (const p of points) expect(p).toBeLessThan(total);
        expect([...points].sort((a, b) => a - b)).toEqual(points);
      }
    expect(restartPoints(1, 2)).toEqual([0, 0]);
    expect(restartPoints(2, 3)).toEqual([1, 1, 1]);
  });

  it('refuses a load run without cycles', () => {
    expect(() => restartPoints(0, 1)).toThrow(RangeError);
  });
});
