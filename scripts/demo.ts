/**
 * The main job's scenario: a foundation line trained from scratch on generated text, then an application
 * line fed a stream of drops (new products, a malformed drop, a poisoned drop, FAQ answers, a regulation
 * change), with an application bound to it, a human approval, a gate rejection and a canary rollback; then a
 * second foundation version that reaches the application line by a transfer cycle, and the application follows.
 */
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Registry } from '../registry/registry.ts';
import { PRESETS } from '../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../schemas/defaults.ts';
import type { LineSpec, RecipeOverride } from '../schemas/io.ts';
import type { CycleSummary } from '../schemas/contracts/messages.ts';
import { reportRegression, review, sendDrop, waitForCycle, waitForPhase, type LoopTarget } from '../client/ops.ts';
import { upgradeProgress, upgradeResult } from '../client/upgrades.ts';
import { transferCycleId, upgradeWorkflowId } from '../schemas/contracts/ids.ts';
import { cycleStateQuery } from '../schemas/contracts/messages.ts';
import { writeScenario } from '../bench/scenario.ts';

export interface DemoOptions {
  client: Client;
  registry: Registry;
  taskQueue: string;
  dataDir: string;
  log: (line: string) => void;
  /** Names of the lines (tests use their own). */
  lines?: { foundation: string; application: string; app: string };
  /** Scale training steps (tests use fewer). */
  steps?: { foundation: number; application: number };
}

export interface DemoRow {
  line: string;
  version: number | null;
  parent: string | null;
  drop: string;
  verdict: string;
  suites: Record<string, { kind: 'text' | 'probe'; value: number }>;
  reason: string;
}

const ACTOR = 'demo-reviewer';

export async function runDemo(opts: DemoOptions): Promise<DemoRow[]> {
  const names = opts.lines ?? { foundation: 'base', application: 'support', app: 'helpdesk' };
  const steps = opts.steps ?? { foundation: 300, application: 250 };
  const t: LoopTarget = { client: opts.client, taskQueue: opts.taskQueue };
  const files = writeScenario(join(opts.dataDir, 'demo-drops'));
  const config = PRESETS.small;

  const foundation: LineSpec = {
    name: names.foundation,
    kind: 'foundation',
    modelConfig: config,
    recipe: { ...DEFAULT_RECIPE, steps: steps.foundation, warmupSteps: 30, learningRate: 4e-3, l2Pull: 0, replayRatio: 0 },
    gateRules: DEFAULT_GATE_RULES,
    promotion: DEFAULT_PROMOTION,
  };
  const application: LineSpec = {
    name: names.application,
    kind: 'application',
    foundation: names.foundation,
    modelConfig: config,
    // Half of each batch rehearses earlier drops (the line's and the foundation's, evenly): tiny models forget fast.
    // A foundation upgrade's transfer re-learns from the replay buffer what four drops taught: four drops' steps
    // (the loop's default, TRANSFER_STEPS_FACTOR x steps, written out).
    recipe: { ...DEFAULT_RECIPE, steps: steps.application, learningRate: 3e-3, replayRatio: 0.5, l2Pull: 0, transfer: { steps: steps.application * 4 } },
    // Held-out text of a few sentences per drop moves more than 5% between tiny-model versions, and with eight
    // probes a suite moves in steps of 0.125: one flipped probe may pass, two may not.
    // For the same reason a foundation upgrade may flip up to a tenth of the probes (support has a few dozen, so
    // the default 2% allows not one).
    gateRules: { ...DEFAULT_GATE_RULES, maxRegression: { loss: 0.25, exactMatch: 0.15 }, maxNegativeFlipRate: 0.1 },
    // Every release to stable waits for a reviewer; a canary window lets monitoring report regressions.
    promotion: { canaryWindow: '5s', requireApproval: true, approvalTimeout: '1h' },
  };
  await opts.registry.ensureLine({ ...foundation, foundationLine: undefined, actor: 'demo' });
  await opts.registry.ensureLine({ ...application, foundationLine: names.foundation, actor: 'demo' });
  // The application line follows its foundation: a new stable foundation version starts its transfer by itself.
  if ((await opts.registry.getLine(names.application)).upgradePolicy !== 'auto')
    await opts.registry.updateLine({ name: names.application, upgradePolicy: 'auto', actor: 'demo', reason: 'follow the foundation' });

  const rows: DemoRow[] = [];
  const run = async (line: string, file: string, during?: (digest: string) => Promise<void>, recipe?: RecipeOverride) => {
    const { request } = await sendDrop(t, line, file, { requestedBy: 'demo', recipe });
    opts.log(`drop ${request.source} -> ${line} (${request.digest.slice(0, 12)})`);
    if (during) await during(request.digest);
    const summary = await waitForCycle(opts.client, line, request.digest);
    opts.log(`  ${summary.verdict}${summary.version ? ` ${line}@${summary.version}` : ''}: ${summary.reason}`);
    rows.push(await row(opts.registry, line, request.source, summary));
    return summary;
  };
  /** Approves the candidate when its cycle asks for approval; a candidate the gate rejects never asks. */
  const approveIfAsked = (line: string, note: string) => async (digest: string) => {
    const state = await waitForPhase(opts.client, line, digest, 'awaiting-approval');
    if (!state) return;
    await review(opts.client, line, 'approve', { version: state.current!.version!, actor: ACTOR, reason: note });
    opts.log(`  approved ${line}@${state.current!.version} as ${ACTOR}`);
  };

  await run(names.foundation, files.foundation);
  await opts.registry.bindApplication({ app: names.app, line: names.application, channel: 'stable', policy: 'follow', actor: 'demo' });
  await run(names.application, files.catalogueA, approveIfAsked(names.application, 'first catalogue checked'));
  await run(names.application, files.catalogueB, approveIfAsked(names.application, 'new products checked'));
  await run(names.application, files.malformed);
  await run(names.application, files.poisoned, approveIfAsked(names.application, 'should not be asked'));
  await run(names.application, files.faq, approveIfAsked(names.application, 'FAQ format checked'));
  // A small correction drop gets a per-drop recipe: fewer, gentler steps and more rehearsal, so four changed
  // facts do not crowd out the rest.
  await run(
    names.application,
    files.regulation,
    async (digest) => {
      // Monitoring in a region still on the old load rules reports the canary; the loop re-evaluates and rolls back.
      const state = await waitForPhase(opts.client, names.application, digest, 'canary');
      if (!state?.current) return;
      await reportRegression(opts.client, names.application, {
        reason: 'region north still uses the old load limits',
        actor: 'monitor-north',
        evidence: files.regulationEvidence,
      });
      opts.log(`  regression reported on ${names.application}@${state.current.version} by monitor-north`);
    },
    { steps: Math.round(steps.application * 0.6), learningRate: 1.5e-3, replayRatio: 0.6 },
  );
  // A foundation upgrade: base@2 (more general text) is promoted, and the line workflow starts
  // `upgrade:base@2`, whose child transfer cycle trains support from base@2 with support's stable version as
  // teacher, judges it by support's gate and the inheritance gate, and releases it like any support version
  // (canary, then the reviewer); helpdesk follows stable onto it.
  const base2 = await run(names.foundation, files.foundationUpdate);
  if (base2.verdict === 'promoted' && base2.version !== undefined) rows.push(await upgradeRow(opts, t, names, base2.version));
  return rows;
}

/** Waits for the automatic upgrade's transfer cycle on the application line, approves it when it asks, and returns its row. */
async function upgradeRow(opts: DemoOptions, t: LoopTarget, names: { foundation: string; application: string }, version: number): Promise<DemoRow> {
  const upgradeId = upgradeWorkflowId(names.foundation, version);
  const cycleId = transferCycleId(names.application, names.foundation, version);
  const source = `upgrade to ${names.foundation}@${version}`;
  opts.log(`${source} -> ${names.application} (${upgradeId}, transfer cycle ${cycleId})`);
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`${upgradeId} did not finish ${names.application}'s transfer within 15 minutes`);
    const progress = await upgradeProgress(t, upgradeId);
    if (progress?.done.some((d) => d.line === names.application)) break;
    const state = progress?.running.includes(names.application) ? await opts.client.workflow.getHandle(cycleId).query(cycleStateQuery).catch(() => null) : null;
    if (state?.awaitingApproval && state.version !== undefined) {
      await review(opts.client, names.application, 'approve', { version: state.version, actor: ACTOR, reason: 'upgrade checked' });
      opts.log(`  approved ${names.application}@${state.version} as ${ACTOR}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const outcome = (await upgradeResult(t, upgradeId)).done.find((d) => d.line === names.application)!;
  opts.log(`  ${outcome.verdict}${outcome.version ? ` ${names.application}@${outcome.version}` : ''}: ${outcome.reason}`);
  return row(opts.registry, names.application, source, outcome);
}

/** A table row from a cycle's outcome: a drop's cycle summary, or an upgrade's outcome for the line. */
async function row(registry: Registry, line: string, drop: string, summary: Pick<CycleSummary, 'version' | 'reason'> & { verdict: string }): Promise<DemoRow> {
  const suites: DemoRow['suites'] = {};
  let parent: string | null = null;
  if (summary.version) {
    const version = await registry.getVersion(line, summary.version);
    // The parent in the line, or for a line's first version the foundation version it starts from.
    parent = version.parentVersion
      ? `${line}@${version.parentVersion}`
      : version.foundationVersion
        ? `${version.foundationVersion.line}@${version.foundationVersion.version}`
        : null;
    for (const e of await registry.getEvaluations(line, summary.version)) {
      const m = e.metrics as { loss?: number; exactMatch?: number; evidence?: number; retired?: number };
      if (m.evidence || m.retired) continue;
      suites[e.suite] = { kind: m.exactMatch !== undefined ? 'probe' : 'text', value: m.exactMatch ?? m.loss ?? NaN };
    }
  }
  return { line, version: summary.version ?? null, parent, drop, verdict: summary.verdict, suites, reason: summary.reason };
}

/**
 * The demo's table: one row per drop, one column per suite (S1, S2, ...; a legend below names them):
 * held-out loss for text suites (lower is better), exact match for probe suites (higher is better).
 */
export function formatTable(rows: DemoRow[]): string {
  const suites: { name: string; kind: string }[] = [];
  for (const r of rows) for (const [name, s] of Object.entries(r.suites)) if (!suites.some((x) => x.name === name)) suites.push({ name, kind: s.kind });
  const label = (i: number) => `S${i + 1}`;
  const header = ['version', 'from', 'drop', 'verdict', ...suites.map((_, i) => label(i))];
  const body = rows.map((r) => [
    r.version ? `${r.line}@${r.version}` : r.line,
    r.parent ?? '-',
    r.drop,
    r.verdict,
    ...suites.map((s) => (r.suites[s.name] ? r.suites[s.name]!.value.toFixed(3) : '')),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cols: string[]) =>
    cols
      .map((c, i) => (i >= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const legend = suites.map((s, i) => `${label(i)} ${s.name} (${s.kind === 'probe' ? 'exact match' : 'held-out loss'})`);
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...body.map(fmt), '', ...legend].join('\n');
}
