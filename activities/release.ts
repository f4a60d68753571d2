/**
 * Registry activities of the release loop: line snapshots, candidate registration, gate records, channel
 * moves, overrides and audit events. Each is idempotent by a key the workflow derives from its own id.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { ROOTS_FILE } from './registry/audit.ts';
import { ScheduleNotFoundError } from '@temporalio/client';
import { scheduleId } from '../workflows/schedule-tick-workflow.ts';
import { LineSpec } from '../schemas/io.ts';
import { NotFoundError } from '../schemas/errors.ts';
import type { GateDecision } from '../workflows/gate.ts';
import type { ChannelMove, TickRequest } from '../workflows/messages.ts';
import { ErrorType } from '../workflows/options.ts';
import { tickSignal } from '../workflows/messages.ts';
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
}

export function releaseActivities(deps: ActivityDeps) {
  const { registry } = deps;

  return {
    /** Reads what a cycle needs to know about its line. Read-only. */
    async lineSnapshot(input: { line: string }): Promise<LineSnapshot> {
      const line = await registry.getLine(input.line);
      const spec = LineSpec.parse({
        name: line.name,
        kind: line.kind,
        ...(line.foundationLine ? { foundation: line.foundationLine } : {}),
        modelConfig: line.modelConfig,
        recipe: line.recipe,
        gateRules: line.gateRules,
        promotion: line.promotion,
      });
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
      if (input.parentVersion !== null) {
        const parent = await registry.getVersion(input.line, input.parentVersion);
        foundationVersion = parent.foundationVersion ?? undefined;
      } else if (input.init && input.init.line !== input.line) {
        foundationVersion = input.init;
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
      dropDigest: string;
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
      if (input.decision.verdict === 'fail') await registry.setDropStatus(input.line, input.dropDigest, 'rejected', `gate: ${input.decision.summary}`);
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
      return { line: input.line, channel: 'stable', from: current?.version ?? null, to: input.version, epoch: moved.epoch, releaseId: moved.releaseId };
    },

    /** Sets a drop's final status (a gate or a reviewer rejected its candidate). Idempotent. */
    async setDropStatus(input: { line: string; digest: string; status: 'accepted' | 'rejected'; reason: string }): Promise<void> {
      await registry.setDropStatus(input.line, input.digest, input.status, input.reason);
    },

    /** Appends an audit entry for a human or system event that moves nothing (a report, an approval). */
    async recordEvent(input: { actor: string; action: string; line: string; version?: number; payload: Record<string, unknown> }): Promise<void> {
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
      await deps.client.workflow.signalWithStart('lineWorkflow', {
        workflowId: `line:${input.line}`,
        taskQueue: deps.workflowQueue,
        args: [{ line: input.line }],
        signal: tickSignal,
        signalArgs: [input.tick],
      });
    },
  };

  async function moveTo(input: MoveRequest): Promise<ChannelMove> {
    await registry.getVersion(input.line, input.to);
    const expectedEpoch = input.expectedEpoch ?? (await registry.getChannels(input.line)).find((c) => c.channel === input.channel)?.epoch ?? 0;
    const moved = await registry.moveChannel({ ...input, expectedEpoch });
    return { line: input.line, channel: input.channel, from: moved.from, to: moved.to, epoch: moved.epoch, releaseId: moved.releaseId };
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
