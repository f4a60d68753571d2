/** What `perennial status <line>` prints of a line's RL runs (feedback cycles, issue 16): one line per version. */
import type { RlRunInfo } from '../../registry/registry.ts';

const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : '-');

export function rlRunLines(runs: RlRunInfo[]): string[] {
  if (!runs.length) return [];
  return [
    'RL runs (feedback):',
    ...runs.map((r) => {
      const first = r.checks[0];
      const last = r.checks[r.checks.length - 1];
      const budget = (r.recipe as { klBudget?: number }).klBudget;
      return (
        `  v${String(r.version).padEnd(5)} held-out reward ${f(first?.reward)} -> ${f(last?.reward)}  gold ${f(first?.gold)} -> ${f(last?.gold)}  ` +
        `KL ${r.finalKl.toFixed(4)}${budget !== undefined ? ` (budget ${budget})` : ''}  ${last?.step ?? 0} steps, stopped by ${r.stoppedBy}  feedback ${r.feedbackDigests.map((d) => d.slice(0, 12)).join(', ')}`
      );
    }),
  ];
}
