/**
 * The version registry: every registry write the release loop makes goes through this class. Each write is
 * one transaction that also appends its audit entry, so a change and its record commit together or not at
 * all; races (version numbers, channel moves, retried activities) are settled by the database.
 */
import { RlRunsRegistry } from './rl-runs.ts';

export type * from './types.ts';
export type { TrialInfo, TrialInput } from './trials.ts';
export type { RlCheckInfo, RlRunInfo, RlRunInput } from './rl-runs.ts';

/**
 * The registry of lines, versions, channels and their history: one facade over the aggregate modules
 * (core.ts: dependencies and audit; lines.ts: lines, drops, suites; training.ts; versions.ts; evaluations.ts:
 * evaluations and gates; releases.ts: channels, releases, applications; verification.ts; lineage.ts; trials.ts: recipe-search trials;
 * rl-runs.ts: RL runs), each extending the one before it, so a module may use what the modules below it define.
 */
export class Registry extends RlRunsRegistry {}
