/**
 * The fault run's bookkeeping and verdict, as pure code (no stack, no I/O) so a unit test can hold it to its
 * word: which faults were injected and survived, when the load run restarts a worker, and whether the run as a
 * whole may say "every guarantee held". A fault kind that was never injected was not survived: it fails the run.
 */

export const FAULT_KINDS = ['training-worker-sigkill', 'all-workers-sigkill', 'temporal-sigkill', 'postgres-restart', 'worker-restart-under-load'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults injected and survived, by kind: what `npm run chaos` prints. */
export class FaultLedger {
  readonly counts = new Map<FaultKind, { injected: number; survived: number }>();
  injected(kind: FaultKind, n = 1) {
    const c = this.counts.get(kind) ?? { injected: 0, survived: 0 };
    c.injected += n;
    this.counts.set(kind, c);
  }
  survived(kind: FaultKind, n = 1) {
    const c = this.counts.get(kind) ?? { injected: 0, survived: 0 };
    c.survived += n;
    this.counts.set(kind, c);
  }
  /** Every kind in `kinds`, with zeros for the ones never touched (the table prints them all). */
  table(kinds: readonly FaultKind[] = FAULT_KINDS): Record<FaultKind, { injected: number; survived: number }> {
    return Object.fromEntries(kinds.map((k) => [k, { ...(this.counts.get(k) ?? { injected: 0, survived: 0 }) }])) as Record<
      FaultKind,
      { injected: number; survived: number }
    >;
  }
}

/**
 * The completed-cycle counts after which the load run restarts a worker: `restarts` points spread evenly over
 * the run and all below `totalCycles`, so each lands while cycles are still open however fast the machine is
 * (a timer fires 0 times when the load ends before it). Point i means "once i-th-point cycles have completed".
 */
export function restartPoints(totalCycles: number, restarts: number): number[] {
  if (!Number.isInteger(totalCycles) || totalCycles < 1) throw new RangeError(`a load run needs at least one cycle, not ${totalCycles}`);
  if (!Number.isInteger(restarts) || restarts < 0) throw new RangeError(`restarts must be a whole number, not ${restarts}`);
  // With a single cycle the only moment with a cycle open is before it completes (point 0).
  return Array.from({ length: restarts }, (_, i) => Math.min(totalCycles - 1, Math.max(1, Math.floor((totalCycles * (i + 1)) / (restarts + 1)))));
}

export interface ChaosVerdict {
  ok: boolean;
  /** Fault kinds injected 0 times. */
  notInjected: FaultKind[];
  /** Every reason the run fails, one line each: kinds not injected or not survived, then the scenarios' findings. */
  problems: string[];
}

/**
 * The run's verdict from the ledger and what the scenarios found broken. It holds only when every kind in
 * `kinds` was injected at least once and survived every time, and no scenario broke a guarantee.
 */
export function chaosVerdict(ledger: FaultLedger, broken: readonly string[], kinds: readonly FaultKind[] = FAULT_KINDS): ChaosVerdict {
  const table = ledger.table(kinds);
  const notInjected = kinds.filter((k) => table[k].injected === 0);
  const problems = [
    ...notInjected.map((k) => `${k}: injected 0 times; a fault that was not injected was not survived`),
    ...kinds
      .filter((k) => table[k].injected > 0 && table[k].survived < table[k].injected)
      .map((k) => `${k}: survived ${table[k].survived} of ${table[k].injected} injections`),
    ...broken,
  ];
  return { ok: problems.length === 0, notInjected, problems };
}

/** The summary's last lines: "every guarantee held", or what broke (the first `limit` reasons). */
export function verdictLines(v: ChaosVerdict, limit = 30): string[] {
  if (v.ok) return ['every guarantee held'];
  return [`guarantees broken (${v.problems.length}):`, ...v.problems.slice(0, limit).map((p) => `  - ${p}`)];
}

/** The exit status of `npm run chaos`: 1 when the verdict fails. */
export const verdictExitCode = (v: ChaosVerdict): number => (v.ok ? 0 : 1);
