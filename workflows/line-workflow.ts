/**
 * One long-lived workflow per model line (`line:<name>`). It queues data drops (one content digest is taken
 * once), runs one release cycle at a time as a child workflow, serves rollbacks, overrides and regression
 * reports as updates, and continues as new after each cycle so its history stays small over years.
 */
import {
  ApplicationFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  currentUpdateInfo,
  executeChild,
  patched,
  startChild,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DropRequest } from '../schemas/io.ts';
import type { WorkflowQueueActivities } from '../activities/types.ts';
import {
  dataDropSignal,
  overrideUpdate,
  phaseSignal,
  progressSignal,
  regressionSignal,
  reportRegressionUpdate,
  rollbackUpdate,
  stateQuery,
  tickSignal,
  triggerSignal,
  type ChannelMove,
  type CycleResult,
  type LineState,
  type UpgradePlan,
  type UpgradeStart,
} from '../schemas/contracts/messages.ts';
import { cycleKey, cycleWorkflow } from './cycle-workflow.ts';
import { reevaluateWorkflow } from './reevaluate-workflow.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { WorkflowType, cycleWorkflowId, lineWorkflowId, upgradeWorkflowId } from '../schemas/contracts/ids.ts';
import type { upgradeWorkflow } from './upgrade-workflow.ts';
import { registry } from './options.ts';
import { LINE, PHASE } from '../schemas/contracts/search-attributes.ts';

const SEEN_LIMIT = 10_000;
const RECENT_LIMIT = 20;

export interface LineWorkflowInput {
  line: string;
  state?: LineState;
}

/** Runs the release loop of one line forever. Side effects only through activities and child workflows. */
export async function lineWorkflow(input: LineWorkflowInput): Promise<never> {
  const { line } = input;
  const acts = proxyActivities<WorkflowQueueActivities>(registry);
  // Handlers first: a signal-with-start delivers its drop before the first await, and queries may come at once.
  const state: LineState = input.state ?? emptyState(line);

  setHandler(stateQuery, () => state);

  setHandler(dataDropSignal, (drop: DropRequest) => {
    // Everything else about a drop request is checked by the ingest activity, which quarantines what is
    // wrong with its reason; a payload without a string digest and path cannot even be named, so it is
    // refused here before workflow code (dedup, ids) touches it.
    if (typeof drop !== 'object' || drop === null || typeof drop.digest !== 'string' || typeof drop.path !== 'string') {
      state.malformedSignals = (state.malformedSignals ?? 0) + 1;
      log.warn('refused a dataDrop signal that is not a drop request', { line, payload: describePayload(drop) });
      return;
    }
    const known = state.seen.includes(drop.digest) || state.queue.some((d) => d.digest === drop.digest) || state.current?.digest === drop.digest;
    if (known) {
      state.duplicatesIgnored++;
      return;
    }
    state.queue.push(drop);
    state.seen.push(drop.digest);
    if (state.seen.length > SEEN_LIMIT) state.seen.splice(0, state.seen.length - SEEN_LIMIT);
  });

  setHandler(tickSignal, (tick) => {
    if (tick.kind === 'reevaluate') state.reevaluations++;
    else state.released = state.queue.length; // a tick runs every drop that is pending now
  });

  setHandler(triggerSignal, ({ scheduled }) => {
    state.scheduled = scheduled;
  });

  setHandler(progressSignal, (p) => {
    if (state.current?.cycleId !== p.cycleId) return;
    Object.assign(state.current, { step: p.step, steps: p.steps, loss: p.loss });
  });

  setHandler(phaseSignal, (p) => {
    if (state.current?.cycleId !== p.cycleId || p.seq <= (state.current.phaseSeq ?? 0)) return;
    state.current.phaseSeq = p.seq;
    state.current.phase = p.phase;
    if (p.version !== undefined) state.current.version = p.version;
    upsertSearchAttributes([{ key: PHASE, value: p.phase }]);
  });

  setHandler(
    rollbackUpdate,
    async (req) => {
      const channel = req.channel ?? 'stable';
      const move = await acts.moveChannel({
        line,
        channel,
        to: req.to,
        actor: req.actor,
        reason: `rollback: ${req.reason}`,
        requestKey: `rollback:${line}:${currentUpdateInfo()!.id}`,
        // The activity refuses a version that does not exist, or whose gate failed without an override.
        rollback: { override: req.override === true },
      });
      state.channels[channel] = req.to;
      return channel === 'stable' ? withUpgrade(move) : move;
    },
    {
      validator: (req) => {
        if (!Number.isInteger(req.to) || req.to < 1)
          throw ApplicationFailure.nonRetryable(`--to must be a version number, got ${req.to}`, ErrorType.InvalidRequest);
        if (!req.reason?.trim()) throw ApplicationFailure.nonRetryable('a rollback needs --reason', ErrorType.InvalidRequest);
        if (!req.actor?.trim()) throw ApplicationFailure.nonRetryable('a rollback needs an actor', ErrorType.InvalidRequest);
        if (req.override !== undefined && typeof req.override !== 'boolean')
          throw ApplicationFailure.nonRetryable(`override is true or false, got ${String(req.override)}`, ErrorType.InvalidRequest);
      },
    },
  );

  setHandler(
    overrideUpdate,
    async (req) => {
      const move = await acts.overrideGate({
        line,
        version: req.version,
        actor: req.actor,
        reason: req.reason,
        requestKey: `override:${line}:${currentUpdateInfo()!.id}`,
      });
      state.channels[move.channel] = req.version;
      return withUpgrade(move);
    },
    {
      validator: (req) => {
        if (!Number.isInteger(req.version) || req.version < 1)
          throw ApplicationFailure.nonRetryable(`not a version number: ${req.version}`, ErrorType.InvalidRequest);
        if (!req.reason?.trim()) throw ApplicationFailure.nonRetryable('overriding a failed gate needs --reason', ErrorType.InvalidRequest);
        if (!req.actor?.trim()) throw ApplicationFailure.nonRetryable('overriding a failed gate needs --actor', ErrorType.InvalidRequest);
      },
    },
  );

  setHandler(
    reportRegressionUpdate,
    async (report) => {
      const current = state.current!;
      await getExternalWorkflowHandle(current.cycleId).signal(regressionSignal, report);
      return { cycleId: current.cycleId, version: current.version! };
    },
    {
      validator: (report) => {
        if (state.current?.phase !== 'canary' || state.current.version === undefined) {
          throw ApplicationFailure.nonRetryable(
            `line ${line} has no version in its canary window now (phase: ${state.current?.phase ?? 'idle'})`,
            ErrorType.InvalidRequest,
          );
        }
        if (!report.reason?.trim() || !report.actor?.trim())
          throw ApplicationFailure.nonRetryable('a regression report needs a reason and an actor', ErrorType.InvalidRequest);
      },
    },
  );

  upsertSearchAttributes([
    { key: LINE, value: line },
    { key: PHASE, value: 'idle' },
  ]);
  if (!input.state) {
    // A fresh start (first drop, or after a terminate): numbering and channels continue from the registry.
    const snapshot = await acts.lineSnapshot({ line });
    state.cyclesStarted = snapshot.cycleCount;
    state.channels = Object.fromEntries(Object.entries(snapshot.channels).map(([name, c]) => [name, c.version]));
    state.scheduled = snapshot.scheduled;
  }

  for (;;) {
    await condition(() => state.reevaluations > 0 || (state.queue.length > 0 && (!state.scheduled || state.released > 0)));

    if (state.reevaluations > 0) {
      state.reevaluations = 0;
      await executeChild(reevaluateWorkflow, {
        workflowId: `reevaluate:${line}:${workflowInfo().runId}:${state.cyclesStarted}`,
        args: [{ line }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      continue;
    }

    const drop = state.queue.shift()!;
    state.released = Math.max(0, state.released - 1);
    const n = ++state.cyclesStarted;
    const cycleId = cycleWorkflowId(line, n);
    state.current = { cycleId, digest: drop.digest, source: drop.source, phase: 'ingest', startedAt: new Date().toISOString() };
    let result: CycleResult;
    try {
      result = await executeChild(cycleWorkflow, {
        workflowId: cycleId,
        args: [{ line, drop, parentId: workflowInfo().workflowId }],
        // A cycle that outlives a terminated line workflow still finishes its release steps.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      // A cycle that failed outright (not a business verdict) is recorded; the line keeps serving. Its drop was
      // never judged: it is marked failed (out of replay and the gate) and canary leaves its candidate.
      const reason = `the cycle failed: ${failureMessage(err)}`;
      let dropFailed = false;
      try {
        ({ dropFailed } = await acts.closeFailedCycle({ line, key: cycleKey(cycleId, drop.digest), digest: drop.digest, reason }));
      } catch (cleanup) {
        log.error('could not close a failed cycle', { cycleId, error: (cleanup as Error).message });
      }
      result = { cycleId, verdict: 'rejected', reason, channels: state.channels, dropFailed };
    }
    // A failed drop may be sent again (with another recipe, say): the line forgets it has seen it.
    if (result.dropFailed) state.seen = state.seen.filter((d) => d !== drop.digest);
    Object.assign(state.channels, result.channels);
    if (!('canary' in result.channels)) delete state.channels.canary; // the cycle cleared it
    state.recent.push({
      cycleId,
      digest: drop.digest,
      source: drop.source,
      verdict: result.verdict,
      version: result.version,
      reason: result.reason,
      finishedAt: new Date().toISOString(),
    });
    if (state.recent.length > RECENT_LIMIT) state.recent.shift();
    state.current = null;
    upsertSearchAttributes([{ key: PHASE, value: 'idle' }]);

    // Anchor what this cycle wrote: the audit root is signed and exported outside the database.
    try {
      await acts.sealAuditLog();
      delete state.sealFailure;
    } catch (err) {
      // The loop goes on, but the state query (perennial status) says the log is unanchored until a seal succeeds.
      state.sealFailure = { cycleId, at: new Date().toISOString(), reason: failureMessage(err) };
      log.error('could not seal the audit log; run `perennial audit verify`', { error: state.sealFailure.reason });
    }

    // A foundation line whose stable moved starts the upgrade of its `auto` application lines. Patched: histories
    // recorded before upgrades existed replay without these commands.
    if (result.verdict === 'promoted' && result.version !== undefined && patched('foundation-upgrade-v1')) {
      const upgrade = await startAutoUpgrade(result.version);
      if (upgrade) state.lastUpgrade = upgrade;
    }

    // Carry the queue and counters into a fresh history once every handler has finished its work.
    await condition(allHandlersFinished);
    await continueAsNew<typeof lineWorkflow>({ line, state });
  }

  /**
   * An operator's rollback or override moved this line's `stable`: on a foundation line its `auto` dependents
   * follow as after a promotion, and the move says which upgrade started or why none did. Patched: histories
   * recorded before moves started upgrades replay without the plan.
   */
  async function withUpgrade(move: ChannelMove): Promise<ChannelMove> {
    if (move.to === null || move.from === move.to || !patched('upgrade-on-move-v1')) return move;
    const upgrade = await startAutoUpgrade(move.to);
    if (!upgrade) return move;
    state.lastUpgrade = upgrade;
    return { ...move, upgrade };
  }

  /**
   * Starts `upgrade:<line>@<version>` over the application lines built on this line whose policy is `auto`, when
   * any is due or refused (a refused line's reason is the upgrade's outcome for it, and no transfer starts for it).
   * Returns what it started or why nothing started; null on an application line, or a foundation without
   * dependents. The upgrade is abandoned, not owned: it outlives this run's continue-as-new.
   */
  async function startAutoUpgrade(version: number): Promise<UpgradeStart | null> {
    const none = (reason: string, plan: UpgradePlan = { lines: [] }): UpgradeStart => ({
      foundation: line,
      version,
      lines: [],
      refused: plan.refused ?? [],
      skipped: plan.skipped ?? [],
      reason,
    });
    let plan: UpgradePlan;
    try {
      plan = await acts.upgradePlan({ foundation: line, version });
    } catch (err) {
      // Stable moved on meanwhile, say: there is nothing to upgrade to (an application line gets an empty plan).
      log.info('no automatic upgrade', { line, version, reason: failureMessage(err) });
      return none(failureMessage(err));
    }
    const refused = plan.refused ?? [];
    const skipped = plan.skipped ?? [];
    // Patched: a plan recorded before refusals existed started nothing without a due line.
    if (plan.lines.length === 0 && !(refused.length > 0 && patched('upgrade-refused-v1'))) {
      if (skipped.length === 0) return null;
      return none(`no dependent line is due (${skipped.map((s) => `${s.line}: ${s.reason}`).join('; ')})`, plan);
    }
    const workflowId = upgradeWorkflowId(line, version);
    try {
      await startChild<typeof upgradeWorkflow>(WorkflowType.upgrade, {
        workflowId,
        args: [
          {
            foundation: line,
            version,
            pending: plan.lines,
            ...(refused.length ? { done: refused.map((r) => ({ line: r.line, verdict: 'refused' as const, reason: r.reason })) } : {}),
          },
        ],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      // Already started (a retried promotion): that one carries on. Anything else is said, not thrown: the
      // channel has moved, and a thrown error would retry this workflow task for ever.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) return none(`the upgrade did not start: ${failureMessage(err)}`, plan);
    }
    return { foundation: line, version, workflowId, lines: [...plan.lines], refused, skipped };
  }
}

/** The innermost message of a child workflow's failure (the activity's, not "Activity task failed"). */
function failureMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause && (e.cause as { message?: string }).message) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

function emptyState(line: string): LineState {
  return {
    line,
    queue: [],
    seen: [],
    cyclesStarted: 0,
    current: null,
    channels: {},
    recent: [],
    scheduled: false,
    released: 0,
    reevaluations: 0,
    duplicatesIgnored: 0,
  };
}

/** A short, data-free description of a refused signal payload for the log (types only, never values). */
function describePayload(value: unknown): string {
  if (typeof value !== 'object' || value === null) return value === null ? 'null' : typeof value;
  return `{ ${Object.entries(value)
    .slice(0, 8)
    .map(([k, v]) => `${k.slice(0, 32)}: ${v === null ? 'null' : typeof v}`)
    .join(', ')} }`;
}
