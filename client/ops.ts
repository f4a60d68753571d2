/**
 * Client-side operations on the release loop, shared by the CLI, the demo, the benchmarks and the tests:
 * sending drops (signal-with-start), reading a line's live state, waiting for cycles, approvals, reports
 * and rollbacks (workflow updates). Every payload is a path, a digest or a number, never data.
 */
import { readFile, realpath } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { QueryNotRegisteredError, WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { DropRequest, type RecipeOverride } from '../schemas/io.ts';
import { sha256Hex } from '../domain/drops.ts';
import { WorkflowType, lineWorkflowId, transferCyclePrefix } from '../schemas/contracts/ids.ts';
import { lineWorkflow } from '../workflows/line-workflow.ts';
import {
  approveUpdate,
  cycleStateQuery,
  dataDropSignal,
  overrideUpdate,
  rejectUpdate,
  reportRegressionUpdate,
  rollbackUpdate,
  stateQuery,
  type CycleSummary,
  type LineState,
} from '../schemas/contracts/messages.ts';

/**
 * A workflow refused an update: its validator, or the handler's activity, said why. `message` is that
 * reason (`support has no version 99; it has 1-5`), never "Workflow Update failed"; `type` is the failure
 * type (`NotFoundError`, `GateRefusedError`, ...); the Temporal error is the cause.
 */
export class RequestRefusedError extends Error {
  constructor(
    message: string,
    readonly type: string | undefined,
    options: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RequestRefusedError';
  }
}

/** Runs an update; a refusal becomes a RequestRefusedError carrying the workflow's own message. */
async function update<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      let cause: unknown = err.cause;
      while (cause instanceof Error && cause.cause instanceof Error && (cause.name === 'ActivityFailure' || cause.message === 'Activity task failed'))
        cause = cause.cause;
      const type = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
      throw new RequestRefusedError(cause instanceof Error ? cause.message : err.message, type, { cause: err });
    }
    throw err;
  }
}

export interface LoopTarget {
  client: Client;
  taskQueue: string;
}

/** A source name from a file name: `drops/products-2026-11.jsonl` -> `products-2026-11`. */
export function sourceName(path: string): string {
  const name = basename(path, extname(path))
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return name || 'drop';
}

/** Hashes the file and signals it to the line workflow, starting that workflow when it is not running. */
export async function sendDrop(t: LoopTarget, line: string, file: string, opts: { source?: string; recipe?: RecipeOverride; requestedBy?: string; kind?: 'feedback' } = {}) {
  // The workers read no drop through a link: the sender, who may, names the file itself.
  const path = await realpath(resolve(file)).catch(() => resolve(file));
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    // The worker quarantines what it cannot read; the sender still says what it saw.
    bytes = new Uint8Array();
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const request = DropRequest.parse({
    path,
    digest: sha256Hex(bytes),
    source: opts.source ?? sourceName(resolve(file)),
    recipe: opts.recipe,
    requestedBy: opts.requestedBy,
    ...(opts.kind ? { kind: opts.kind } : {}),
  });
  const state = await lineState(t.client, line).catch(() => null);
  const earlier = (state?.recent ?? []).filter((c) => c.digest === request.digest);
  const already = state ? alreadyTaken(state, request.digest) : undefined;
  // A drop whose cycle failed may be sent again: the cycles it already had are not the answer to this send.
  // Content the line has taken (and not failed) is ignored by the line workflow: its last cycle is the answer.
  const answer = already === 'taken' ? earlier.at(-1) : undefined;
  const priorCycles = earlier.filter((c) => c !== answer).map((c) => c.cycleId);
  const handle = await t.client.workflow.signalWithStart(lineWorkflow, {
    workflowId: lineWorkflowId(line),
    taskQueue: t.taskQueue,
    args: [{ line }],
    signal: dataDropSignal,
    signalArgs: [request],
  });
  return {
    request,
    workflowId: handle.workflowId,
    runId: handle.signaledRunId,
    priorCycles,
    ...(already ? { already: { state: already, ...(answer ? { cycle: answer } : {}) } } : {}),
  };
}

/**
 * Whether the line workflow will ignore a drop of this digest, as its signal handler decides: `pending` (queued
 * or running now: its cycle is still to come) or `taken` (done; a failed drop is forgotten and may be sent again).
 */
export function alreadyTaken(state: LineState, digest: string): 'pending' | 'taken' | undefined {
  if (state.current?.digest === digest || state.queue.some((d) => d.digest === digest)) return 'pending';
  return state.seen.includes(digest) ? 'taken' : undefined;
}

/** One line for a person: what a send of content the line already has will do. */
export function describeAlready(already: { state: 'pending' | 'taken'; cycle?: CycleSummary }): string {
  if (already.state === 'pending') return 'the line has this content queued or running already; its cycle is the answer to this send';
  const c = already.cycle;
  return `the line took this content before (${c ? `${c.cycleId}: ${c.verdict} - ${c.reason}` : 'in a cycle older than its recent history'}); it takes a content digest once, so this send starts no new cycle`;
}

/** The line workflow's live state, or null when it has not been started. */
export async function lineState(client: Client, line: string): Promise<LineState | null> {
  try {
    return await client.workflow.getHandle(lineWorkflowId(line)).query(stateQuery);
  } catch (err) {
    // Not started, or started but its first task has not run yet (handlers are not registered until then).
    if (err instanceof WorkflowNotFoundError || err instanceof QueryNotRegisteredError) return null;
    throw err;
  }
}

/** Waits until the line has finished a cycle for `digest` (other than the cycles in `except`) and returns its summary. */
export async function waitForCycle(
  client: Client,
  line: string,
  digest: string,
  opts: { timeoutMs?: number; onState?: (s: LineState) => void; except?: string[] } = {},
): Promise<CycleSummary> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15 * 60_000);
  while (Date.now() < deadline) {
    const state = await lineState(client, line).catch(() => null);
    if (state) {
      opts.onState?.(state);
      const done = [...state.recent].reverse().find((c) => c.digest === digest && !opts.except?.includes(c.cycleId));
      if (done) return done;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`no cycle for drop ${digest.slice(0, 12)} on ${line} finished within ${Math.round((opts.timeoutMs ?? 900_000) / 1000)} s`);
}

/**
 * Waits until the line's cycle for `digest` is in `phase` (for approvals and canary reports); null when that
 * cycle finished without reaching it (the gate rejected it, say).
 */
export async function waitForPhase(client: Client, line: string, digest: string, phase: string, timeoutMs = 15 * 60_000): Promise<LineState | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await lineState(client, line);
    if (state?.current?.digest === digest && state.current.phase === phase) return state;
    if (state?.recent.some((c) => c.digest === digest)) return null;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`line ${line} did not reach phase ${phase} within ${Math.round(timeoutMs / 1000)} s`);
}

/**
 * The running transfer cycles of `line` (one per foundation upgrade it is part of: children of the upgrade
 * workflow, not of the line workflow, so the line's state does not name them), by Temporal visibility.
 */
export async function transferCycles(client: Client, line: string): Promise<string[]> {
  const prefix = transferCyclePrefix(line);
  const ids: string[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = '${WorkflowType.cycle}' AND ExecutionStatus = 'Running'` }))
    if (w.workflowId.startsWith(prefix)) ids.push(w.workflowId);
  return ids.sort();
}

/**
 * Approves (or rejects) the version a cycle of the line waits on: the line's running cycle, or a transfer cycle
 * of a foundation upgrade (which waits for approval on a line that requires it, like any release).
 */
export async function review(client: Client, line: string, decision: 'approve' | 'reject', req: { version: number; actor: string; reason?: string }) {
  const current = (await lineState(client, line))?.current?.cycleId;
  const candidates = [...(current ? [current] : []), ...(await transferCycles(client, line))];
  if (!candidates.length) throw new Error(`line ${line} has no cycle running now`);
  const states = await Promise.all(candidates.map(async (id) => ({ id, state: await client.workflow.getHandle(id).query(cycleStateQuery) })));
  const waiting = states.filter((c) => c.state.awaitingApproval);
  // The one waiting on this version, else the only one waiting (its validator names the version it waits on).
  const target = waiting.find((c) => c.state.version === req.version) ?? (waiting.length === 1 ? waiting[0] : undefined);
  if (!target) {
    if (waiting.length > 1) throw new Error(`${waiting.map((c) => `${c.id} waits on version ${c.state.version}`).join('; ')}: name one of them with --version`);
    const first = states[0]!;
    throw new Error(`${first.id} is not waiting for approval (phase: ${first.state.phase})`);
  }
  const handle = client.workflow.getHandle(target.id);
  return decision === 'approve' ? update(handle.executeUpdate(approveUpdate, { args: [req] })) : update(handle.executeUpdate(rejectUpdate, { args: [req] }));
}

export async function reportRegression(client: Client, line: string, report: { reason: string; actor: string; evidence?: string }) {
  let evidence: { evidence: string; evidenceDigest: string } | undefined;
  if (report.evidence) {
    const path = await realpath(resolve(report.evidence)).catch(() => resolve(report.evidence!));
    evidence = { evidence: path, evidenceDigest: sha256Hex(await readFile(path)) };
  }
  return update(
    client.workflow
      .getHandle(lineWorkflowId(line))
      .executeUpdate(reportRegressionUpdate, { args: [{ reason: report.reason, actor: report.actor, ...evidence }] }),
  );
}

function withStart(t: LoopTarget, line: string) {
  return new WithStartWorkflowOperation(lineWorkflow, {
    workflowId: lineWorkflowId(line),
    taskQueue: t.taskQueue,
    args: [{ line }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

/** Moves `stable` (or another channel) back to an earlier version, starting the line workflow if needed. */
export async function rollback(t: LoopTarget, line: string, req: { to: number; reason: string; actor: string; channel?: string; override?: boolean }) {
  return update(t.client.workflow.executeUpdateWithStart(rollbackUpdate, { args: [req], startWorkflowOperation: withStart(t, line) }));
}

/** Promotes a version whose gate failed; audited with the actor and reason. */
export async function overrideGate(t: LoopTarget, line: string, req: { version: number; actor: string; reason: string }) {
  return update(t.client.workflow.executeUpdateWithStart(overrideUpdate, { args: [req], startWorkflowOperation: withStart(t, line) }));
}
