/**
 * One release cycle (`cycle:<line>:<n>`): ingest -> adapt -> evaluate -> gate -> candidate -> canary
 * (regression watch) -> approval (when the line requires it) -> stable. Every decision is a pure function
 * here; every side effect is an activity; business outcomes are return values, not failures.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { Activities, SuiteRef } from '../activities/types.ts';
import { evaluateGate, type GateDecision } from './gate.ts';
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
} from './messages.ts';
import { ErrorType, evaluation, ingest, registryLocal, training, trainingQueueFor } from './options.ts';
import { LINE, PHASE, VERDICT, VERSION } from './search-attributes.ts';

const SYSTEM_ACTOR = 'perennial';
const REPORTED_PHASES = new Set<CyclePhase>(['adapt', 'evaluate', 'canary', 'awaiting-approval', 'rollback']);

/** Runs one drop through the release loop. Idempotent per cycle id: every write is keyed by it. */
export async function cycleWorkflow(input: CycleInput): Promise<CycleResult> {
  const { line, drop } = input;
  const info = workflowInfo();
  const cycleId = info.workflowId;
  // Keys for idempotent registry writes: unique per cycle and drop, stable across activity retries.
  const key = `${cycleId}:${drop.digest.slice(0, 16)}`;
  const trainingQueue = trainingQueueFor(info.taskQueue);
  const light = proxyLocalActivities<Activities>(registryLocal);
  const ingestActs = proxyActivities<Activities>(ingest);
  const heavy = proxyActivities<Activities>(training(trainingQueue));
  const evals = proxyActivities<Activities>(evaluation(trainingQueue));

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
  const move = async (req: Parameters<Activities['moveChannel']>[0]) => {
    const moved = await light.moveChannel(req);
    channels[moved.channel] = moved.to;
    return moved;
  };
  const finish = (verdict: CycleVerdict, reason: string, decision?: GateDecision): CycleResult => {
    upsertSearchAttributes([{ key: VERDICT, value: verdict }]);
    enter('done');
    return { cycleId, verdict, version: state.version, reason, decision, channels: { ...channels } };
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
  let ingested;
  try {
    ingested = await ingestActs.ingestDrop({ line, request: drop, key });
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === ErrorType.InvalidData) return finish('quarantined', cause.message);
    throw err;
  }
  if (ingested.status === 'duplicate')
    return finish('duplicate', `drop ${drop.digest.slice(0, 12)} was already ingested for ${line} (${ingested.previousStatus})`);

  // Adapt: train the candidate from the champion (or the foundation's stable version, or from scratch).
  enter('adapt');
  const recipe = { ...snapshot.spec.recipe, ...drop.recipe };
  const init = champion !== null ? { line, version: champion } : (snapshot.foundationStable ?? null);
  const trained = await heavy.trainCandidate({
    line,
    key,
    init,
    dropDigest: drop.digest,
    replay: snapshot.replay,
    recipe,
    modelConfig: snapshot.spec.modelConfig,
    progressTo: input.parentId,
  });
  const { version, candidateMove } = await light.registerCandidate({
    line,
    key,
    training: trained,
    parentVersion: champion,
    init,
    drops: [drop.digest],
    recipe,
    candidateReason: `new candidate from drop ${drop.source}`,
  });
  channels.candidate = candidateMove.to;
  state.version = version;
  upsertSearchAttributes([{ key: VERSION, value: version }]);

  // Evaluate candidate and champion on every suite the line has promised, plus the new drop's suites.
  enter('evaluate');
  const suites: SuiteRef[] = [...snapshot.suites, ...ingested.suites];
  const newSuites = new Set(ingested.suites.map((s) => s.name));
  // One activity measures both, so the champion's numbers come from the same code, data and backend.
  const measured = await evals.evaluateVersions({ line, versions: champion !== null ? [version, champion] : [version], suites });
  const candidateMetrics = measured[version]!;
  const championMetrics = champion !== null ? measured[champion]! : null;

  enter('gate');
  const decision = evaluateGate({
    rules: snapshot.spec.gateRules,
    suites: suites.map((s) => ({ name: s.name, kind: s.kind, isNew: newSuites.has(s.name) })),
    candidate: candidateMetrics,
    champion: championMetrics,
  });
  // On a fail, the same call marks the drop rejected, so its data never enters the replay buffer.
  const gate = await light.recordGate({ line, key, candidate: version, champion, decision, dropDigest: drop.digest });
  if (decision.verdict === 'fail') return finish('rejected', decision.summary, decision);

  // Canary: serve the candidate on `canary` and watch for regression reports during the window.
  enter('canary');
  const previousCanary = snapshot.channels.canary?.version ?? null;
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
    });
    if (finding.confirmed) {
      enter('rollback');
      const back = previousCanary ?? champion;
      if (back !== null) {
        await move({
          line,
          channel: 'canary',
          to: back,
          actor: report.actor,
          reason: `automatic rollback: ${report.reason} (${finding.detail})`,
          requestKey: `${key}:canary-rollback`,
        });
      }
      await light.setDropStatus({ line, digest: drop.digest, status: 'rejected', reason: `canary regression: ${report.reason}` });
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
      const back = previousCanary ?? champion;
      if (back !== null)
        await move({
          line,
          channel: 'canary',
          to: back,
          actor: answered ? review!.request.actor : SYSTEM_ACTOR,
          reason: why,
          requestKey: `${key}:canary-revert`,
        });
      await light.setDropStatus({ line, digest: drop.digest, status: 'rejected', reason: why });
      return finish(answered ? 'rejected-by-reviewer' : 'approval-expired', why, decision);
    }
    await light.recordEvent({ actor: review!.request.actor, action: 'release.approved', line, version, payload: { reason: review!.request.reason ?? null } });
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
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === ErrorType.ChannelConflict) return finish('conflict', cause.message, decision);
    throw err;
  }
  return finish('promoted', decision.summary, decision);

  /** Re-evaluates canary and champion on the reported evidence (or on every suite) and compares. */
  async function checkRegression(report: RegressionReport): Promise<{ confirmed: boolean; detail: string }> {
    const evidence =
      report.evidence && report.evidenceDigest ? await ingestActs.ingestEvidence({ line, path: report.evidence, digest: report.evidenceDigest }) : [];
    const against = previousCanary ?? champion;
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
}

function toMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) return 0;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
