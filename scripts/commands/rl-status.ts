/**
 * How the CLI shows a line's RL runs (feedback cycles, issue 16): `perennial status <line>` one line per version,
 * `perennial versions <line> --metrics` one under each version's metrics, `--json` the whole run.
 */
import type { RlRunInfo } from '../../registry/registry.ts';
import { goldCheckWords } from '../../report/rl.ts';

/** An RL run as `perennial versions --json` gives it: the endpoints of its curves, then every check. */
export function rlRunJson(run: RlRunInfo | undefined) {
  if (!run) return null;
  const first = run.checks[0];
  const last = run.checks.at(-1);
  return {
    feedbackDigests: run.feedbackDigests,
    recipe: run.recipe,
    rewardBefore: first?.reward ?? null,
    rewardAfter: last?.reward ?? null,
    goldBefore: first?.gold ?? null,
    goldAfter: last?.gold ?? null,
    /** "no gold check" when the guard had no gold of its own (then gold is the reward); null for older runs. */
    goldCheck: goldCheckWords(run.rewardStats),
    finalKl: run.finalKl,
    klBudget: typeof run.recipe.klBudget === 'number' ? run.recipe.klBudget : null,
    steps: last?.step ?? 0,
    stoppedBy: run.stoppedBy,
    checks: run.checks,
    rewardStats: run.rewardStats,
  };
}

const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));

/** `held-out reward 0.348 -> 0.609  gold 0.348 -> 0.609  KL 0.1510 (budget 1)  80 steps, stopped by steps  feedback 1f2e...` */
export function rlRunSummary(rl: NonNullable<ReturnType<typeof rlRunJson>>): string {
  return (
    `held-out reward ${f(rl.rewardBefore)} -> ${f(rl.rewardAfter)}  ` +
    (rl.goldCheck === 'no gold check' ? 'gold: no gold check  ' : `gold ${f(rl.goldBefore)} -> ${f(rl.goldAfter)}  `) +
    `KL ${rl.finalKl.toFixed(4)}${rl.klBudget === null ? '' : ` (budget ${rl.klBudget})`}  ${rl.steps} steps, stopped by ${rl.stoppedBy}  ` +
    `feedback ${rl.feedbackDigests.map((d) => d.slice(0, 12)).join(', ')}`
  );
}

export function rlRunLines(runs: RlRunInfo[]): string[] {
  if (!runs.length) return [];
  return ['RL runs (feedback):', ...runs.map((r) => `  v${String(r.version).padEnd(5)} ${rlRunSummary(rlRunJson(r)!)}`)];
}
