/**
 * Registry activities of the release loop: line snapshots, candidate registration, gate records, channel
 * moves, overrides and audit events. Each is idempotent by a key the workflow derives from its own id.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { ROOTS_FILE } from '../registry/audit.ts';
import { planUpgrade } from '../registry/upgrades.ts';
import { loadModel } from '../model/weights.ts';
import { ScheduleNotFoundError } from '@temporalio/client';
import { lineWorkflowId, scheduleId, WorkflowType } from '../schemas/contracts/ids.ts';
import { LineSpec } from '../schemas/io.ts';
import { ChannelConflictError, InvalidInputError, NotFoundError } from '../schemas/contracts/errors.ts';
import type { GateDecision } from '../schemas/contracts/gate.ts';
import type { ChannelMove, TickRequest, UpgradePlan } from '../schemas/contracts/messages.ts';
import { ErrorType } from '../schemas/contracts/errors.ts';
import { tickSignal } from '../schemas/contracts/messages.ts';
import type { ActivityDeps } from './deps.ts';
import type { LineSnapshot, SuiteRef, TrainingOutcome, VersionRef } from './types.ts';

export interface MoveRequest {
  line: string;
  channel: string;
  to: number;
  /** The epoch the caller saw; omitted = the channel's epoch now (an explicit operator action). */
  expectedEpoch?: number;
  actor: string;
  reason: string;
  gateDecisionId?: number;
  requestKey: string;
  /**
   * An operator's rollback: the version must exist, and its gate must have passed (or been overridden)
   * unless `override` is set, which records the override (who, why) in its gate decision and the audit log.
   */
  rollback?: { override: boolean };
}

/** Version numbers as a person reads them: `1-5`, `1-3, 7`. */
export function numberRanges(numbers: number[]): string {
  const sorted = [...new Set(numbers)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/**
 * Why `line@to` may not be rolled back to as asked, or null when it may: it does not exist, or its gate
 * failed (or never ran) and no override was given. Shared by the rollback activity (the authority) and the
 * CLI, which asks first so the user hears it before anything is started.
 */
export async function rollbackRefusal(
  registry: ActivityDeps['registry'],
  line: string,
  to: number,
  override: boolean,
): Promise<{ refusal: string; type: string } | null> {
  const versions = (await registry.listVersions(line)).map((v) => v.version);
  if (!versions.includes(to))
    return {
      refusal: `${line} has no version ${to}; ${versions.length ? `it has ${numberRanges(versions)}` : 'it has no versions yet'}`,
      type: ErrorType.NotFound,
    };
  const decision = await registry.getGateDecisionFor(line, to);
  if (override || (decision && (decision.verdict === 'pass' || decision.override))) return null;
  const why = decision ? `failed its gate (${decision.summary ?? `gate decision ${decision.id}`})` : 'was never gated';
  return { refusal: `${line}@${to} ${why}; rolling back to it needs --override --reason`, type: ErrorType.GateRefused };
}

export function releaseActivities(deps: ActivityDeps) {
  const { registry } = deps;

  return {
    /** The lines an upgrade reaches and why others are left out, after checking its foundation version (registry/upgrades.ts). Read-only. */
    async upgradePlan(input: { foundation: string; version: number; lines?: string[] }): Promise<UpgradePlan> {
      try {
        return await planUpgrade(registry, input);
      } catch (err) {
        if (err instanceof NotFoundError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.NotFound);
        if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidInput);
        throw err;
      }
    },

    /** Reads what a cycle needs to know about its line. Read-only. */
    async lineSnapshot(input: { line: string }): Promise<LineSnapshot> {
      const line = await registry.getLine(input.line);
      const parsed = LineSpec.safeParse({
        name: line.name,
        kind: line.kind,
        ...(line.foundationLine ? { foundation: line.foundationLine } : {}),
        modelConfig: line.modelConfig,
        recipe: line.recipe,
        gateRules: line.gateRules,
        promotion: line.promotion,
      });
      // A stored spec that does not validate will not validate on a retry either: end the cycle with the reason
      // instead of retrying the snapshot for ever.
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(spec)'}: ${i.message}`).join('; ');
        throw ApplicationFailure.nonRetryable(`line ${input.line} has an invalid stored spec (${why})`, ErrorType.InvalidInput);
      }
      const spec = parsed.data;
      // Independent reads, in parallel: this runs at the start of every cycle, inside its first workflow task.
      const f = spec.foundation;
      const [ownChannels, foundationSuites, foundationChannels, ownSuites, drops, foundationDrops, scheduled] = await Promise.all([
        registry.getChannels(input.line),
        f ? activeSuites(f) : [],
        f ? registry.getChannels(f) : [],
        activeSuites(input.line),
        registry.listDrops(input.line),
        f ? registry.listDrops(f) : [],
        lineIsScheduled(input.line),
      ]);
      const channels = Object.fromEntries(ownChannels.filter((c) => c.version !== null).map((c) => [c.channel, { version: c.version!, epoch: c.epoch }]));
      const suites: SuiteRef[] = [...foundationSuites, ...ownSuites];
      const stable = foundationChannels.find((c) => c.channel === 'stable');
      const foundationStable: VersionRef | null = f && stable?.version ? { line: f, version: stable.version } : null;
      const accepted = (list: typeof drops) =>
        list
          .filter((d) => d.status === 'accepted')
          .sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime())
          .map((d) => d.digest);
      // The replay buffer holds the line's own accepted drops, newest first, then the data its foundation
      // learned from: an application model keeps its general capability by rehearsing it.
      const replay = [...accepted(drops), ...accepted(foundationDrops)];
      return { spec, channels, suites, replay, foundationStable, cycleCount: drops.length, scheduled };
    },

    /**
     * What a transfer needs besides the line's snapshot: the foundation version the line's stable version stands on
     * (whose gain the new one must beat) and, when the transfer re-bases the line onto another foundation line, that
     * line's suites and accepted drops (newest first), which the transfer is then judged on and trained with too.
     * Read-only.
     */
    async transferContext(input: { line: string; champion: number; foundation: VersionRef }): Promise<{
      oldFoundation: VersionRef | null;
      rebase: boolean;
      suites: SuiteRef[];
      replay: string[];
    }> {
      const [line, champion] = await Promise.all([registry.getLine(input.line), registry.getVersion(input.line, input.champion)]);
      const rebase = line.foundationLine !== input.foundation.line;
      const [suites, drops] = rebase ? await Promise.all([activeSuites(input.foundation.line), registry.listDrops(input.foundation.line)]) : [[], []];
      const replay = drops
        .filter((d) => d.status === 'accepted')
        .sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime())
        .map((d) => d.digest);
      return { oldFoundation: champion.foundationVersion ?? null, rebase, suites, replay };
    },

    /**
     * After a transfer's version reached `stable`: the line now stands on `foundation`'s line and on the shape of
     * that version (registry adoptFoundation; audited when anything changed). Idempotent.
     */
    async adoptFoundation(input: { line: string; version: number; foundation: VersionRef; actor: string; reason: string }): Promise<void> {
      const v = await registry.getVersion(input.line, input.version);
      const { config } = loadModel(await deps.store.get(v.weightsDigest));
      await registry.adoptFoundation({
        name: input.line,
        foundationLine: input.foundation.line,
        modelConfig: config as never,
        actor: input.actor,
        reason: input.reason,
      });
    },

    /** Creates the version for a trained candidate and signs its manifest. Idempotent by the cycle key. */
    async registerCandidate(input: {
      line: string;
      key: string;
      training: TrainingOutcome;
      parentVersion: number | null;
      init: VersionRef | null;
      drops: string[];
      recipe: unknown;
      /** Why the `candidate` channel moves to the new version (it always does). */
      candidateReason: string;
    }): Promise<{ version: number; candidateMove: ChannelMove }> {
      let foundationVersion: VersionRef | undefined;
      if (input.init && input.init.line !== input.line) {
        // Started from a foundation version: a line's first version, or a transfer (whose parent is its teacher).
        foundationVersion = input.init;
      } else if (input.parentVersion !== null) {
        const parent = await registry.getVersion(input.line, input.parentVersion);
        foundationVersion = parent.foundationVersion ?? undefined;
      }
      const t = input.training;
      const { version } = await registry.createVersion({
        line: input.line,
        trainingRunKey: input.key,
        parentVersion: input.parentVersion,
        foundationVersion,
        weightsDigest: t.weightsDigest,
        recipe: input.recipe,
        drops: input.drops,
        codeRevision: deps.codeRevision,
        seed: (input.recipe as { seed: number }).seed,
        backend: t.backend,
        compute: { tokens: t.tokens, flops: t.flops, wallMs: t.wallMs, steps: t.steps },
      });
      const candidateMove = await moveTo({
        line: input.line,
        channel: 'candidate',
        to: version,
        actor: 'perennial',
        reason: input.candidateReason,
        requestKey: `${input.key}:candidate`,
      });
      return { version, candidateMove };
    },

    /** Records the gate's decision with every suite's numbers and reason; a failed gate rejects the drop. Idempotent by the cycle key. */
    async recordGate(input: {
      line: string;
      key: string;
      candidate: number;
      champion: number | null;
      decision: GateDecision;
      /** The cycle's drop (a transfer has none). */
      dropDigest?: string;
    }): Promise<{ id: number }> {
      const id = await registry.recordGateDecision({
        line: input.line,
        key: input.key,
        candidate: input.candidate,
        champion: input.champion,
        verdict: input.decision.verdict,
        suites: input.decision.suites,
        summary: input.decision.summary,
      });
      if (input.decision.verdict === 'fail' && input.dropDigest)
        await registry.setDropStatus(input.line, input.dropDigest, 'rejected', `gate: ${input.decision.summary}`);
      return { id };
    },

    /** Moves a channel (compare-and-swap on its epoch), with its release record and audit entry. Idempotent by requestKey. */
    moveChannel: (input: MoveRequest) => moveTo(input),

    /** Promotes a version whose gate failed, recording who overrode it and why (audited). */
    async overrideGate(input: { line: string; version: number; actor: string; reason: string; requestKey: string }): Promise<ChannelMove> {
      const decision = await registry.getGateDecisionFor(input.line, input.version);
      if (!decision) throw new NotFoundError(`${input.line}@${input.version} has no gate decision to override`);
      if (decision.verdict === 'pass' && !decision.override) {
        throw ApplicationFailure.nonRetryable(`${input.line}@${input.version} passed its gate; approve it instead of overriding`, ErrorType.InvalidRequest);
      }
      await registry.overrideGateDecision({ id: decision.id, actor: input.actor, reason: input.reason });
      const current = (await registry.getChannels(input.line)).find((c) => c.channel === 'stable');
      const moved = await registry.moveChannel({
        line: input.line,
        channel: 'stable',
        to: input.version,
        expectedEpoch: current?.epoch ?? 0,
        actor: input.actor,
        reason: `gate override: ${input.reason}`,
        gateDecisionId: decision.id,
        requestKey: input.requestKey,
      });
      // `moved.from`, not the channel read above: on a retry after the move committed, stable already holds the version.
      return { line: input.line, channel: 'stable', from: moved.from, to: input.version, epoch: moved.epoch, releaseId: moved.releaseId };
    },

    /** Sets a drop's final status (a gate or a reviewer rejected its candidate). Idempotent. */
    async setDropStatus(input: { line: string; digest: string; status: 'accepted' | 'rejected' | 'failed'; reason: string }): Promise<void> {
      await registry.setDropStatus(input.line, input.digest, input.status, input.reason);
    },

    /**
     * Every way out of a cycle that does not promote calls this: when `canary` still holds the cycle's candidate
     * (and `stable` does not), it goes back to the line's `stable` version now, or is cleared when the line has
     * none, so the next cycle never meets a rejected version there. Idempotent by requestKey.
     */
    async settleCanary(input: { line: string; version: number; actor: string; reason: string; requestKey: string }): Promise<ChannelMove | null> {
      return settle(input);
    },

    /**
     * Closes a cycle that ended without a judgment: its drop (when this cycle's ingest accepted it) becomes
     * `failed` with the reason, so it feeds neither replay nor the gate and may be sent again, and `canary` is
     * settled off the cycle's candidate. Returns whether the drop was marked. Idempotent.
     */
    async closeFailedCycle(input: { line: string; key: string; digest: string; reason: string }): Promise<{ dropFailed: boolean }> {
      const failed = await registry.failDrop(input.line, input.digest, input.key, input.reason);
      const run = await registry.getTrainingRun(input.key).catch(() => null);
      if (run?.version)
        await settle({ line: input.line, version: run.version, actor: 'perennial', reason: input.reason, requestKey: `${input.key}:canary-settle` });
      const drop = await registry.getDrop(input.line, input.digest);
      return { dropFailed: failed !== null || (drop?.status === 'failed' && drop.ingestKey === input.key) };
    },

    /**
     * Appends an audit entry for a human or system event that moves nothing (a report, an approval). Idempotent by
     * `eventKey`: a re-run (a replayed local activity) finds the entry the first run appended.
     */
    async recordEvent(input: {
      actor: string;
      action: string;
      line: string;
      version?: number;
      payload: Record<string, unknown>;
      eventKey?: string;
    }): Promise<void> {
      await registry.recordEvent(input);
    },

    /**
     * Signs the audit log's Merkle root and appends it to the roots file outside the database, so releases
     * are anchored where a database superuser cannot rewrite them. Refuses (and fails) on a broken log.
     * A seal extends the last root's Merkle frontier by the entries since (O(log n) plus the tail), so it runs
     * after every cycle by default; PERENNIAL_AUDIT_SEAL_SECONDS > 0 seals only when the last root is older.
     * `perennial audit export` verifies the whole log and signs one at any time.
     */
    async sealAuditLog(): Promise<{ treeSize: number; rootHash: string } | { skipped: string }> {
      const minAgeMs = Number(process.env.PERENNIAL_AUDIT_SEAL_SECONDS ?? 0) * 1000;
      if (minAgeMs > 0) {
        const last = await stat(join(registry.auditDir, ROOTS_FILE)).catch(() => null);
        const age = last ? Date.now() - last.mtimeMs : Infinity;
        if (age < minAgeMs) return { skipped: `the last root was signed ${Math.round(age / 1000)} s ago` };
      }
      const { root } = await registry.sealAuditLog();
      return { treeSize: root.treeSize, rootHash: root.rootHash };
    },

    /** Hands a schedule tick to the line workflow, starting it when it is not running. */
    async signalLine(input: { line: string; tick: TickRequest }): Promise<void> {
      await deps.client.workflow.signalWithStart(WorkflowType.line, {
        workflowId: lineWorkflowId(input.line),
        taskQueue: deps.workflowQueue,
        args: [{ line: input.line }],
        signal: tickSignal,
        signalArgs: [input.tick],
      });
    },
  };

  async function settle(input: { line: string; version: number; actor: string; reason: string; requestKey: string }): Promise<ChannelMove | null> {
    // A re-run (a replayed local activity, a retry after the commit) reports the move its first run made: by now
    // canary has left the version, and the checks below would say there was nothing to move.
    const done = await registry.getReleaseByKey(input.line, input.requestKey);
    if (done) return { line: input.line, channel: done.channel, from: done.fromVersion, to: done.toVersion, epoch: done.epoch, releaseId: done.id };
    const now = await registry.getChannels(input.line);
    const canary = now.find((c) => c.channel === 'canary');
    const stable = now.find((c) => c.channel === 'stable')?.version ?? null;
    if (!canary || canary.version !== input.version || stable === input.version) return null;
    const common = { line: input.line, channel: 'canary', expectedEpoch: canary.epoch, actor: input.actor, reason: input.reason, requestKey: input.requestKey };
    let moved;
    try {
      moved = stable !== null ? await registry.moveChannel({ ...common, to: stable }) : await registry.clearChannel(common);
    } catch (err) {
      // Someone moved canary in the meantime (an operator's rollback): theirs is the newer decision.
      if (err instanceof ChannelConflictError) return null;
      throw err;
    }
    return { line: input.line, channel: 'canary', from: moved.from, to: moved.to, epoch: moved.epoch, releaseId: moved.releaseId };
  }

  async function moveTo(req: MoveRequest): Promise<ChannelMove> {
    const { rollback, ...input } = req;
    if (rollback) {
      const refused = await rollbackRefusal(registry, input.line, input.to, rollback.override);
      if (refused) throw ApplicationFailure.nonRetryable(refused.refusal, refused.type);
      input.gateDecisionId = await overrideForRollback(input, rollback.override);
    }
    await registry.getVersion(input.line, input.to);
    const expectedEpoch = input.expectedEpoch ?? (await registry.getChannels(input.line)).find((c) => c.channel === input.channel)?.epoch ?? 0;
    const moved = await registry.moveChannel({ ...input, expectedEpoch });
    return { line: input.line, channel: input.channel, from: moved.from, to: moved.to, epoch: moved.epoch, releaseId: moved.releaseId };
  }

  /**
   * The gate decision a rollback releases on: the version's own when it passed or was overridden; with
   * `override`, a failed one is overridden now and a version never gated gets a failed decision that carries
   * the override. Both are audited. Idempotent: a retry finds the override already there, or the decision by key.
   */
  async function overrideForRollback(input: MoveRequest, override: boolean): Promise<number | undefined> {
    const decision = await registry.getGateDecisionFor(input.line, input.to);
    if (decision && (decision.verdict === 'pass' || decision.override)) return decision.id;
    if (!override) return undefined; // rollbackRefusal has refused this already
    const reason = `rollback: ${input.reason.replace(/^rollback: /, '')}`;
    if (decision) return (await registry.overrideGateDecision({ id: decision.id, actor: input.actor, reason })).id;
    return registry.recordGateDecision({
      line: input.line,
      key: `${input.requestKey}:override`,
      candidate: input.to,
      champion: null,
      verdict: 'fail',
      suites: [],
      summary: 'never gated; released by an override on rollback',
      override: { actor: input.actor, reason },
      actor: input.actor,
    });
  }

  /** A line whose cycle schedule exists and is not paused waits for ticks; Temporal holds that truth. */
  async function lineIsScheduled(line: string): Promise<boolean> {
    try {
      return !(await deps.client.schedule.getHandle(scheduleId(line, 'cycle')).describe()).state.paused;
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return false;
      throw err;
    }
  }

  async function activeSuites(line: string): Promise<SuiteRef[]> {
    const [suites, drops] = await Promise.all([registry.listSuites(line), registry.listDrops(line)]);
    const accepted = new Set(drops.filter((d) => d.status === 'accepted').map((d) => d.digest));
    return suites
      .filter((s) => s.dropDigest && accepted.has(s.dropDigest))
      .map((s) => ({ name: s.name, kind: s.kind as 'text' | 'probe', line, dropDigest: s.dropDigest! }));
  }
}
