/**
 * One release cycle (`cycle:<line>:<n>`): ingest -> adapt -> evaluate -> gate -> candidate -> canary
 * (regression watch) -> approval (when the line requires it) -> stable. Every decision is a pure function
 * here; every side effect is an activity; business outcomes are return values, not failures.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  executeChild,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { IngestActivities, LocalRegistryActivities, SuiteRef, TrainingQueueActivities } from '../activities/types.ts';
import {
  DEFAULT_MAX_NEGATIVE_FLIP_RATE,
  DEFAULT_MIN_FOUNDATION_GAIN_SHARE,
  combineGates,
  evaluateGate,
  evaluateInheritance,
  interventionRecipe,
  planInterventions,
  wantsPlasticity,
  type GateDecision,
  type Metrics,
} from './gate.ts';
import {
  approveUpdate,
  cycleStateQuery,
  phaseSignal,
  regressionSignal,
  rejectUpdate,
  type CycleInput,
  type CyclePhase,
  type CycleResult,
  type CycleState,
  type CycleVerdict,
  type RegressionReport,
  type ReviewRequest,
} from '../schemas/contracts/messages.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { trainingQueueFor } from '../schemas/contracts/ids.ts';
import { evaluation, ingest, registryLocal, training } from './options.ts';
import { LINE, PHASE, VERDICT, VERSION } from '../schemas/contracts/search-attributes.ts';
import { recipeSearchId, recipeSearchWorkflow } from './recipe-search.ts';
import { rlState, rlVersionRecipe, withRlChecks } from './rl-cycle.ts';
import type { RlRecord, TrainingOutcome } from '../activities/types.ts';
import { TRANSFER_STEPS_FACTOR } from '../schemas/defaults.ts';

const SYSTEM_ACTOR = 'perennial';

/** Key for a cycle's idempotent registry writes: unique per cycle and drop, stable across activity retries. */
export const cycleKey = (cycleId: string, digest: string) => `${cycleId}:${digest.slice(0, 16)}`;
const NON_RETRYABLE = new Set<string>(Object.values(ErrorType));
const REPORTED_PHASES = new Set<CyclePhase>(['adapt', 'evaluate', 'canary', 'awaiting-approval', 'rollback']);

/** Runs one drop through the release loop. Idempotent per cycle id: every write is keyed by it. */
export async function cycleWorkflow(input: CycleInput): Promise<CycleResult> {
  const { line, drop, transfer } = input;
  const info = workflowInfo();
  const cycleId = info.workflowId;
  if (!drop && !transfer) throw ApplicationFailure.nonRetryable(`${cycleId} has neither a drop nor a transfer to train on`, ErrorType.InvalidRequest);
  // A transfer has no drop: its writes are keyed by the cycle id alone (one transfer per line and foundation version).
  const key = drop ? cycleKey(cycleId, drop.digest) : `${cycleId}:transfer`;
  /** Marks the cycle's drop (a transfer has none: nothing to mark). */
  const setDropStatus = async (status: 'rejected', reason: string) => {
    if (drop) await light.setDropStatus({ line, digest: drop.digest, status, reason });
  };
  const trainingQueue = trainingQueueFor(info.taskQueue);
  const light = proxyLocalActivities<LocalRegistryActivities>(registryLocal);
  const ingestActs = proxyActivities<IngestActivities>(ingest);
  const heavy = proxyActivities<TrainingQueueActivities>(training(trainingQueue));
  const evals = proxyActivities<TrainingQueueActivities>(evaluation(trainingQueue));

  const state: CycleState = { cycleId, line, phase: 'ingest', awaitingApproval: false };
  let review: { approved: boolean; request: ReviewRequest } | undefined;
  const regressions: RegressionReport[] = [];
  setHandler(cycleStateQuery, () => state);
  setHandler(regressionSignal, (report) => void regressions.push(report));
  const reviewValidator = (req: ReviewRequest) => {
    if (!state.awaitingApproval)
      throw ApplicationFailure.nonRetryable(`${cycleId} is not waiting for approval (phase: ${state.phase})`, ErrorType.InvalidRequest);
    if (req.version !== state.version)
      throw ApplicationFailure.nonRetryable(`${cycleId} is waiting for approval of version ${state.version}, not ${req.version}`, ErrorType.InvalidRequest);
    if (!req.actor?.trim()) throw ApplicationFailure.nonRetryable('an approval names its actor (--actor)', ErrorType.InvalidRequest);
  };
  setHandler(approveUpdate, async (req) => ((review = { approved: true, request: req }), { version: req.version, approved: true as const }), {
    validator: reviewValidator,
  });
  setHandler(rejectUpdate, async (req) => ((review = { approved: false, request: req }), { version: req.version, approved: false as const }), {
    validator: reviewValidator,
  });

  const parent = getExternalWorkflowHandle(input.parentId);
  let phaseSeq = 0;
  const enter = (phase: CyclePhase) => {
    state.phase = phase;
    upsertSearchAttributes([{ key: PHASE, value: phase }]);
    // The line workflow's live view needs the long phases only; each signal costs it a workflow task.
    // Not awaited (it goes out with the next command) and best effort (the line may be between runs);
    // the cycle's own state and search attributes are the record.
    if (REPORTED_PHASES.has(phase)) void parent.signal(phaseSignal, { cycleId, phase, version: state.version, seq: ++phaseSeq }).catch(() => undefined);
  };
  /** Channel -> version as this cycle leaves it: the snapshot's, then every move made here. */
  const channels: Record<string, number> = {};
  const track = (moved: { channel: string; to: number | null } | null) => {
    if (moved) {
      if (moved.to === null) delete channels[moved.channel];
      else channels[moved.channel] = moved.to;
    }
    return moved;
  };
  const move = async (req: Parameters<LocalRegistryActivities['moveChannel']>[0]) => track(await light.moveChannel(req))!;
  /** Every way out that does not promote: `canary` goes back to the released version (or is cleared). */
  const settleCanary = async (actor: string, reason: string) =>
    state.version !== undefined ? track(await light.settleCanary({ line, version: state.version, actor, reason, requestKey: `${key}:canary-settle` })) : null;
  const finish = (verdict: CycleVerdict, reason: string, decision?: GateDecision, extra: Partial<CycleResult> = {}): CycleResult => {
    upsertSearchAttributes([{ key: VERDICT, value: verdict }]);
    enter('done');
    return { cycleId, verdict, version: state.version, reason, decision, channels: { ...channels }, ...extra };
  };

  upsertSearchAttributes([
    { key: LINE, value: line },
    { key: PHASE, value: 'ingest' },
  ]);
  const snapshot = await light.lineSnapshot({ line });
  for (const [c, v] of Object.entries(snapshot.channels)) channels[c] = v.version;
  const champion = snapshot.channels.stable?.version ?? null;
  state.champion = champion ?? undefined;

  // Ingest: validate, store, record. Bad input is quarantined by the activity and ends the cycle here.
  enter('ingest');
  let ingested: { suites: SuiteRef[]; counts?: { train: number } } = { suites: [] };
  if (drop) {
    let result;
    try {
      result = await ingestActs.ingestDrop({ line, request: drop, key });
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === ErrorType.InvalidData) return finish('quarantined', cause.message);
      // A recipe override beyond the line's limits: the drop was never judged nor recorded, so the line takes the
      // same content again (`dropFailed`), sent with a recipe within them.
      if (cause instanceof ApplicationFailure && cause.type === ErrorType.RecipeLimit)
        return finish('rejected', cause.message, undefined, { dropFailed: true });
      throw err;
    }
    if (result.status === 'duplicate')
      return finish('duplicate', `drop ${drop.digest.slice(0, 12)} was already ingested for ${line} (${result.previousStatus})`);
    ingested = result;
  } else if (champion === null) {
    // A transfer carries what the line's released model learned; a line without one has nothing to inherit.
    return finish('rejected', `${line} has no stable version to transfer from`);
  }

  // Versioned: a transfer also reads the foundation version its teacher stands on (for the gain check) and, when it
  // re-bases the line onto another foundation line, that line's suites and data. Older histories replay without it.
  const context =
    transfer && champion !== null && patched('rebase-v1') ? await light.transferContext({ line, champion, foundation: transfer.foundation }) : undefined;
  const replay = context ? [...snapshot.replay, ...context.replay.filter((d) => !snapshot.replay.includes(d))] : snapshot.replay;

  // Adapt: train the candidate from the champion (or the foundation's stable version, or from scratch).
  enter('adapt');
  // A transfer starts from the new foundation version and distils the line's stable version (its teacher).
  const init = transfer ? transfer.foundation : champion !== null ? { line, version: champion } : (snapshot.foundationStable ?? null);
  const teacher = transfer && champion !== null ? { line, version: champion } : undefined;
  // A transfer trains with the line's recipe for TRANSFER_STEPS_FACTOR times its steps, under its `transfer`
  // fields; a drop with its own recipe fields.
  const chosen = transfer
    ? { ...snapshot.spec.recipe, steps: snapshot.spec.recipe.steps * TRANSFER_STEPS_FACTOR, ...snapshot.spec.recipe.transfer }
    : { ...snapshot.spec.recipe, ...drop?.recipe };
  // Defended plasticity: when the version the candidate starts from measured below the line's floor, the
  // cycle restores headroom on its weights before training and records what it applied in the recipe. (Not on a
  // transfer: it starts from a foundation version, whose weights are the new base as released.)
  const startPlasticity =
    chosen.plasticityFloor !== undefined && init !== null && !transfer && patched('plasticity-v1')
      ? await evals.measurePlasticity({ line: init.line, version: init.version, seed: chosen.seed })
      : undefined;
  const interventions = planInterventions(chosen.plasticityFloor, startPlasticity?.ratio);
  let recipe = interventionRecipe(chosen, interventions);
  // Recipe `auto` (issue 15): a child workflow searches the cheapest recipe that passes the gate; its winning
  // trial's final checkpoint becomes the candidate (no second training). Versioned: older histories replay without it.
  let resumeFrom: string | undefined;
  // A feedback drop (issue 16) adapts by RL from the stable version; versioned: older histories have none.
  const feedback = drop?.kind === 'feedback' && !transfer && patched('rl-feedback-v1');
  if (feedback && champion === null) {
    const why = `${line} has no stable version for feedback to adapt; send a data drop first`;
    await setDropStatus('rejected', why);
    return finish('rejected', why);
  }
  let rlRun: RlRecord | undefined;
  if (recipe.search && drop && !transfer && !feedback && patched('recipe-search-v1')) {
    const searched = await executeChild(recipeSearchWorkflow, {
      workflowId: recipeSearchId(cycleId),
      taskQueue: info.taskQueue,
      args: [
        {
          line,
          cycleKey: key,
          cycleId,
          dropDigest: drop.digest,
          init,
          champion,
          foundationStable: snapshot.foundationStable,
          replay: snapshot.replay,
          recipe,
          modelConfig: snapshot.spec.modelConfig,
          gateRules: snapshot.spec.gateRules,
          suites: [...snapshot.suites, ...ingested.suites],
          newSuites: ingested.suites.map((s) => s.name),
          features: {
            trainRecords: ingested.counts?.train ?? 0,
            newSuites: ingested.suites.length,
            ...(startPlasticity ? { plasticity: startPlasticity.ratio } : {}),
          },
          trainingQueue,
        },
      ],
    });
    if (!searched.chosen) {
      const best = searched.best;
      const why = `recipe search found no passing recipe (${searched.reason}; ${searched.trials} trial segment(s), ${searched.flops.toExponential(2)} of ${searched.budgetFlops.toExponential(2)} FLOPs)${best ? `; best trial ${best.trial} (${best.steps} steps, lr ${best.recipe.learningRate}, margin ${best.margin === null ? '-' : best.margin.toFixed(4)}): ${best.summary}` : ''}`;
      await setDropStatus('rejected', why);
      return finish('rejected', why);
    }
    recipe = searched.chosen.recipe;
    resumeFrom = searched.chosen.checkpoint;
  }
  let trained: TrainingOutcome;
  try {
    if (feedback) {
      ({ training: trained, rl: rlRun } = await heavy.trainRl({
        line,
        key,
        reference: { line, version: champion! },
        dropDigest: drop!.digest,
        replay,
        // The drop's `rl` fields over the line's, key by key (as `perennial feedback` prints the effective recipe).
        recipe: { ...recipe, rl: { ...snapshot.spec.recipe.rl, ...recipe.rl } },
        modelConfig: snapshot.spec.modelConfig,
      }));
      state.rl = rlState(rlRun);
    } else
      trained = await heavy.trainCandidate({
        ...(resumeFrom ? { resumeFrom } : {}),
        line,
        key,
        init,
        dropDigest: drop?.digest ?? null,
        ...(teacher ? { teacher } : {}),
        replay,
        recipe,
        modelConfig: snapshot.spec.modelConfig,
        progressTo: input.parentId,
      });
  } catch (err) {
    // A failure no retry can fix (divergence, a corrupt checkpoint, a shape mismatch) is a verdict: the drop is
    // marked failed (out of replay and the gate, free to be sent again with another recipe) and the line goes on.
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (!(cause instanceof ApplicationFailure && (cause.nonRetryable || NON_RETRYABLE.has(cause.type ?? '')))) throw err;
    if (!drop) return finish('rejected', `transfer failed: ${cause.message}`);
    const { dropFailed } = await light.closeFailedCycle({ line, key, digest: drop.digest, reason: cause.message });
    return finish('rejected', cause.message, undefined, { dropFailed });
  }
  const { version, candidateMove } = await light.registerCandidate({
    line,
    key,
    training: trained,
    parentVersion: champion,
    init,
    drops: drop ? [drop.digest] : [],
    recipe: rlRun ? rlVersionRecipe(recipe, rlRun) : recipe,
    candidateReason: drop ? `new candidate from drop ${drop.source}` : `upgrade onto ${init!.line}@${init!.version}, distilled from ${line}@${champion}`,
  });
  channels.candidate = candidateMove.to ?? version;
  state.version = version;
  upsertSearchAttributes([{ key: VERSION, value: version }]);
  if (rlRun) await light.recordRlRun({ line, version, dropDigest: drop!.digest, rl: rlRun });

  // Evaluate candidate and champion on every suite the line has promised, plus the new drop's suites.
  enter('evaluate');
  const rebased = (context?.suites ?? []).filter((s) => !snapshot.suites.some((x) => x.line === s.line && x.name === s.name));
  const suites: SuiteRef[] = [...snapshot.suites, ...ingested.suites, ...rebased];
  const newSuites = new Set(ingested.suites.map((s) => s.name));
  // One activity measures both, so the champion's numbers come from the same code, data and backend.
  const measured = await evals.evaluateVersions({ line, versions: champion !== null ? [version, champion] : [version], suites });
  const candidateMetrics = measured[version]!;
  // A line's first version has no champion; it is held to what it replaces: an untrained model of its shape on
  // the line's own suites and, for an application line, its foundation's stable version on the foundation's.
  const first = champion === null ? await firstVersionBaseline() : null;
  // Plasticity (how teachable the candidate still is) costs two short probe trainings, so it is measured only on
  // a line that gates on it or defends it. Versioned: histories recorded before it replay without the call.
  const plasticity =
    wantsPlasticity(snapshot.spec.gateRules, recipe) && patched('plasticity-v1')
      ? await evals.measurePlasticity({ line, version, seed: recipe.seed })
      : undefined;
  if (plasticity) state.plasticity = plasticity.ratio;

  enter('gate');
  const lineDecision = evaluateGate({
    rules: snapshot.spec.gateRules,
    suites: suites.map((s) => ({ name: s.name, kind: s.kind, isNew: newSuites.has(s.name) })),
    candidate: candidateMetrics,
    champion: champion !== null ? measured[champion]! : first!.metrics,
    baseline: first?.label,
    ...(plasticity ? { plasticity: { ratio: plasticity.ratio } } : {}),
  });
  // A transfer must also keep what the old application model could do (the inheritance gate), probe by probe.
  const probeSuites = suites.filter((s) => s.kind === 'probe');
  const flips = transfer && probeSuites.length ? await evals.countFlips({ line, candidate: version, against: champion!, suites: probeSuites }) : {};
  const decision = transfer
    ? combineGates(
        lineDecision,
        evaluateInheritance({
          suites: suites.map((s) => ({ name: s.name, kind: s.kind, foundation: s.line !== line })),
          candidate: Object.fromEntries(Object.entries(candidateMetrics).map(([name, m]) => [name, { ...m, ...flips[name] }])),
          old: measured[champion!]!,
          maxRegression: snapshot.spec.gateRules.maxRegression,
          maxNegativeFlipRate: transfer.maxNegativeFlipRate ?? snapshot.spec.gateRules.maxNegativeFlipRate ?? DEFAULT_MAX_NEGATIVE_FLIP_RATE,
          ...(context ? { foundationGain: await foundationGain(context.oldFoundation) } : {}),
        }),
      )
    : rlRun
      ? withRlChecks(lineDecision, rlRun)
      : lineDecision;
  // On a fail, the same call marks the drop rejected, so its data never enters the replay buffer.
  const gate = await light.recordGate({ line, key, candidate: version, champion, decision, ...(drop ? { dropDigest: drop.digest } : {}) });
  if (decision.verdict === 'fail') return finish('rejected', decision.summary, decision);

  // Canary: serve the candidate on `canary` and watch for regression reports during the window.
  enter('canary');
  await move({
    line,
    channel: 'canary',
    to: version,
    actor: SYSTEM_ACTOR,
    reason: `passed the gate: ${decision.summary}`,
    gateDecisionId: gate.id,
    requestKey: `${key}:canary`,
  });
  const windowEnds = Date.now() + toMs(snapshot.spec.promotion.canaryWindow);
  let handled = 0;
  while (Date.now() < windowEnds) {
    const reported = await condition(() => regressions.length > handled, windowEnds - Date.now());
    if (!reported) break;
    const report = regressions[handled++]!;
    const finding = await checkRegression(report);
    await light.recordEvent({
      actor: report.actor,
      action: 'regression.reported',
      line,
      version,
      payload: { reason: report.reason, evidence: report.evidenceDigest ?? null, confirmed: finding.confirmed, detail: finding.detail },
      // One entry per report, also when this local activity runs again on replay.
      eventKey: `${key}:regression:${handled}`,
    });
    if (finding.confirmed) {
      enter('rollback');
      await settleCanary(report.actor, `automatic rollback: ${report.reason} (${finding.detail})`);
      await setDropStatus('rejected', `canary regression: ${report.reason}`);
      return finish('rolled-back', `canary regression confirmed: ${finding.detail}`, decision);
    }
  }

  // Approval, when the line requires a human before `stable`.
  if (snapshot.spec.promotion.requireApproval) {
    state.awaitingApproval = true;
    enter('awaiting-approval');
    const answered = await condition(() => review !== undefined, snapshot.spec.promotion.approvalTimeout as Duration);
    state.awaitingApproval = false;
    if (!answered || !review!.approved) {
      const why = answered
        ? `rejected by ${review!.request.actor}${review!.request.reason ? `: ${review!.request.reason}` : ''}`
        : `no approval within ${snapshot.spec.promotion.approvalTimeout}`;
      await settleCanary(answered ? review!.request.actor : SYSTEM_ACTOR, why);
      await setDropStatus('rejected', why);
      return finish(answered ? 'rejected-by-reviewer' : 'approval-expired', why, decision);
    }
    await light.recordEvent({
      actor: review!.request.actor,
      action: 'release.approved',
      line,
      version,
      payload: { reason: review!.request.reason ?? null },
      eventKey: `${key}:approved`,
    });
  }

  // Promote: compare-and-swap on the epoch the cycle started from, so an operator's rollback in the meantime wins.
  enter('promote');
  const approvedBy = review?.approved ? review.request.actor : SYSTEM_ACTOR;
  try {
    await move({
      line,
      channel: 'stable',
      to: version,
      expectedEpoch: snapshot.channels.stable?.epoch ?? 0,
      actor: approvedBy,
      reason: `promoted after ${decision.summary}`,
      gateDecisionId: gate.id,
      requestKey: `${key}:stable`,
    });
  } catch (err) {
    // A local activity's failure may reach the workflow unwrapped (no ActivityFailure around it).
    const cause = err instanceof ActivityFailure ? err.cause : err;
    if (cause instanceof ApplicationFailure && cause.type === ErrorType.ChannelConflict) {
      // An operator moved `stable` meanwhile: theirs wins, and canary follows it rather than keep this candidate.
      await settleCanary(SYSTEM_ACTOR, `not promoted: ${cause.message}`);
      return finish('conflict', cause.message, decision);
    }
    throw err;
  }
  // A transfer's line now stands on the new foundation version's line and shape (a re-base changes its foundation
  // line only here, once the new version holds `stable`).
  if (context) {
    await light.adoptFoundation({
      line,
      version,
      foundation: transfer!.foundation,
      actor: approvedBy,
      reason: `${line}@${version} reached stable by a transfer onto ${transfer!.foundation.line}@${transfer!.foundation.version}`,
    });
  }
  return finish('promoted', decision.summary, decision);

  /**
   * The old and the new foundation version on the foundation suites, for the inheritance gate's gain check (absent
   * when the teacher stands on no foundation version or the line has no foundation suites).
   */
  async function foundationGain(old: { line: string; version: number } | null) {
    const held = suites.filter((s) => s.line !== line);
    const minShare = snapshot.spec.gateRules.minFoundationGainShare ?? DEFAULT_MIN_FOUNDATION_GAIN_SHARE;
    if (!old || !held.length || minShare <= 0) return undefined;
    const to = transfer!.foundation;
    if (old.line === to.line) {
      const versions = old.version === to.version ? [to.version] : [to.version, old.version];
      const m = await evals.evaluateVersions({ line: to.line, versions, suites: held });
      return { newFoundation: m[to.version]!, oldFoundation: m[old.version]!, minShare };
    }
    const [n, o] = await Promise.all([
      evals.evaluateVersions({ line: to.line, versions: [to.version], suites: held }),
      evals.evaluateVersions({ line: old.line, versions: [old.version], suites: held }),
    ]);
    return { newFoundation: n[to.version]!, oldFoundation: o[old.version]!, minShare };
  }

  /** Re-evaluates canary and champion on the reported evidence (or on every suite) and compares. */
  async function checkRegression(report: RegressionReport): Promise<{ confirmed: boolean; detail: string }> {
    const evidence =
      report.evidence && report.evidenceDigest ? await ingestActs.ingestEvidence({ line, path: report.evidence, digest: report.evidenceDigest }) : [];
    // Against the released version the gate compared with, never an earlier cycle's candidate.
    const against = champion;
    const scope = evidence.length ? evidence : suites;
    const measured = await evals.evaluateVersions({ line, versions: against !== null ? [version, against] : [version], suites: scope });
    const now = measured[version]!;
    const before = against !== null ? measured[against]! : null;
    const recheck = evaluateGate({
      rules: snapshot.spec.gateRules,
      suites: scope.map((s) => ({ name: s.name, kind: s.kind, isNew: false })),
      candidate: now,
      champion: before,
    });
    return { confirmed: recheck.verdict === 'fail', detail: recheck.summary };
  }

  /** Metrics of what a line's first version replaces, per suite, and how to name it in the decision. */
  async function firstVersionBaseline(): Promise<{ metrics: Record<string, Metrics>; label: string }> {
    const f = snapshot.foundationStable;
    const held = f ? suites.filter((s) => s.line === f.line) : [];
    const own = suites.filter((s) => !held.includes(s));
    const [untrained, foundation] = await Promise.all([
      own.length ? evals.evaluateUntrained({ modelConfig: snapshot.spec.modelConfig, seed: recipe.seed, suites: own }) : {},
      f && held.length ? evals.evaluateVersions({ line: f.line, versions: [f.version], suites: held }).then((m) => m[f.version]!) : {},
    ]);
    const label = f && held.length ? `an untrained model and ${f.line}@${f.version}` : 'an untrained model of its shape';
    return { metrics: { ...untrained, ...foundation }, label };
  }
}

function toMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) return 0;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
