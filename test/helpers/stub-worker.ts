/**
 * Workflow tests without training: the real workflow bundle on the run's Temporal dev server, served by
 * Workers whose activities are scripted stubs with the real signatures. What is under test is the workflow
 * logic (which activity it calls with what, and the verdict it returns), each path in well under a second.
 */
import { Client, Connection } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import type { Activities, LineSnapshot, SuiteRef, TrainingOutcome } from '../../activities/types.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import { PRESETS } from '../../model/config.ts';
import type { DropRequest, LineSpec } from '../../schemas/io.ts';
import type { ChannelMove } from '../../schemas/contracts/messages.ts';
import { trainingQueueFor } from '../../schemas/contracts/ids.ts';

/** Every activity a workflow of this project calls; each is registered on both task queues. */
export const ACTIVITY_NAMES = [
  'lineSnapshot',
  'ingestDrop',
  'ingestEvidence',
  'trainCandidate',
  'registerCandidate',
  'evaluateVersions',
  'evaluateUntrained',
  'measurePlasticity',
  'recordGate',
  'moveChannel',
  'settleCanary',
  'setDropStatus',
  'closeFailedCycle',
  'recordEvent',
  'sealAuditLog',
  'overrideGate',
  'signalLine',
  'upgradePlan',
  'countFlips',
  'transferContext',
  'adoptFoundation',
  'runRecipeTrial',
  'recipeSearchContext',
  'recordRecipeTrials',
  'trainRl',
  'recordRlRun',
] as const satisfies readonly (keyof Activities)[];
export type ActivityName = (typeof ACTIVITY_NAMES)[number];
// The list names every activity, or a stubbed workflow calling a missing one would wait on it forever.
const everyActivityListed: Exclude<keyof Activities, ActivityName> extends never ? true : false = true;
void everyActivityListed;
export type StubActivities = { [K in ActivityName]?: Activities[K] };

export interface Call {
  name: ActivityName;
  input: unknown;
}

export interface StubRun {
  client: Client;
  taskQueue: string;
  /** Every activity call in the order the stubs saw them. */
  calls: Call[];
  /** The inputs of every call of one activity, in order. */
  inputs<K extends ActivityName>(name: K): Parameters<Activities[K]>[0][];
  names(): ActivityName[];
}

export interface StubHarness {
  client: Client;
  /**
   * Runs `body` with `stubs` serving the activities of every workflow of `line` (ids `line:<line>`,
   * `cycle:<line>:<n>`, ...). One workflow worker (`<queue>`) and one "training" worker (`<queue>.training`)
   * serve the whole file; each test owns its line, and the stubs are found by the calling workflow's id. An
   * activity the test did not stub fails at once (non-retryable), naming itself.
   */
  withStubs<T>(line: string, stubs: StubActivities, body: (run: StubRun) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

let runtimeInstalled = false;
const IDENTITY = 'perennial-stub-test';

/** Installs the SDK runtime once per test process with a quiet logger. */
export function installQuietRuntime() {
  if (runtimeInstalled) return;
  // ERROR, not WARN: the failures these tests script would each print a stack trace as a warning.
  // Core's own log too: terminating a line at a test's end makes it warn about a task it can no longer complete.
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  runtimeInstalled = true;
}

/** The line a workflow id belongs to: `line:<line>`, `cycle:<line>:<n>`, `reevaluate:<line>:...`. */
const lineOf = (workflowId: string) => /^[a-z]+:([^:]+)/.exec(workflowId)?.[1] ?? workflowId;

export async function startStubHarness(): Promise<StubHarness> {
  installQuietRuntime();
  const address = inject('temporalAddress');
  const namespace = inject('temporalNamespace');
  const connection = await Connection.connect({ address });
  // A fixed identity, so recorded histories name no host or process.
  const client = new Client({ connection, namespace, identity: IDENTITY });
  const native = await NativeConnection.connect({ address });
  const taskQueue = `wf-stub-${process.pid}-${Date.now().toString(36)}`;
  const lines = new Map<string, { stubs: StubActivities; calls: Call[] }>();
  const seenLocal = new Set<string>();

  const activities = Object.fromEntries(
    ACTIVITY_NAMES.map((activity) => [
      activity,
      async (input: unknown) => {
        const info = Context.current().info;
        const workflowId = info.workflowExecution?.workflowId ?? '';
        const script = lines.get(lineOf(workflowId));
        if (!script) throw ApplicationFailure.nonRetryable(`no test stubs the activities of ${workflowId}`, 'NotStubbedError');
        // A local activity is at least once: when a workflow task times out under load before its marker is
        // recorded, the replayed task runs the same call (same run, sequence number and attempt) again. That is
        // one call of the workflow's, so it is recorded once; a retry (a higher attempt) is recorded as its own.
        const callId = `${info.workflowExecution?.runId}:${info.activityId}:${info.attempt}`;
        if (!info.isLocal || !seenLocal.has(callId)) script.calls.push({ name: activity, input });
        if (info.isLocal) seenLocal.add(callId);
        const stub = script.stubs[activity] as ((i: unknown) => Promise<unknown>) | undefined;
        if (!stub) throw ApplicationFailure.nonRetryable(`activity ${activity} is not stubbed in this test`, 'NotStubbedError');
        try {
          return await stub(input);
        } catch (err) {
          // Failures travel with their stack into the history; recorded fixtures name no local path.
          if (err instanceof Error) err.stack = `${err.name}: ${err.message}`;
          throw err;
        }
      },
    ]),
  );
  const workflowBundle = { codePath: inject('workflowBundlePath') };
  const workers = [
    await Worker.create({ connection: native, namespace, taskQueue, workflowBundle, activities, identity: IDENTITY }),
    await Worker.create({ connection: native, namespace, taskQueue: trainingQueueFor(taskQueue), activities, identity: IDENTITY }),
  ];
  const running = workers.map((w) => w.run());

  return {
    client,
    async withStubs(line, stubs, body) {
      if (lines.has(line)) throw new Error(`line ${line} is already stubbed in this file`);
      const calls: Call[] = [];
      lines.set(line, { stubs, calls });
      return body({
        client,
        taskQueue,
        calls,
        inputs: <K extends ActivityName>(activity: K) => calls.filter((c) => c.name === activity).map((c) => c.input as Parameters<Activities[K]>[0]),
        names: () => calls.map((c) => c.name),
      });
    },
    async close() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
      await native.close();
      await connection.close();
    },
  };
}

// ---- Scripted data ------------------------------------------------------------------------------------------

export const digestOf = (seed: string) => seed.repeat(64).slice(0, 64);

export function dropRequest(seed: string, source = `src-${seed}`): DropRequest {
  return { path: `/drops/${source}.jsonl`, digest: digestOf(seed), source };
}

export function lineSpec(line: string, promotion: Partial<LineSpec['promotion']> = {}): LineSpec {
  return {
    name: line,
    kind: 'foundation',
    modelConfig: PRESETS.tiny,
    recipe: DEFAULT_RECIPE,
    gateRules: DEFAULT_GATE_RULES,
    promotion: { ...DEFAULT_PROMOTION, ...promotion },
  };
}

/** A line with `stable` at version 1 (epoch 3) and one promised text suite, `old`. */
export function snapshotWithChampion(line: string, promotion: Partial<LineSpec['promotion']> = {}): LineSnapshot {
  return {
    spec: lineSpec(line, promotion),
    channels: { stable: { version: 1, epoch: 3 } },
    suites: [suite(line, 'old', 'a')],
    replay: [digestOf('a')],
    foundationStable: null,
    cycleCount: 1,
    scheduled: false,
  };
}

export function suite(line: string, name: string, seed: string): SuiteRef {
  return { name, kind: 'text', line, dropDigest: digestOf(seed) };
}

/** Scores the first version asked for (the candidate) better than the rest on `new`, equal on `old`: a pass. */
export const passingEvaluation: Activities['evaluateVersions'] = async ({ versions }) =>
  Object.fromEntries(versions.map((v, i) => [v, i === 0 ? { old: { loss: 2 }, new: { loss: 1 } } : { old: { loss: 2 }, new: { loss: 2 } }]));

export const TRAINED: TrainingOutcome = {
  weightsDigest: digestOf('w'),
  steps: 10,
  tokens: 1000,
  flops: 1e6,
  wallMs: 5,
  backend: 'stub',
  finalLoss: 1.5,
  resumedFromStep: 0,
  lossCurve: [3, 2, 1.5],
};

export function moved(line: string, channel: string, from: number | null, to: number | null, epoch = 1): ChannelMove {
  return { line, channel, from, to, epoch, releaseId: epoch };
}

/** Waits until `probe` returns a value other than undefined (polling every 20 ms), or fails after `ms`. */
export async function until<T>(probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Stubs under which every cycle of `line` promotes: versions count up from 2, each candidate beats its
 * champion. `promotion(n)` sets the policy the n-th lineSnapshot call returns (the line's own call included).
 */
export function promotingStubs(line: string, promotion: (n: number) => Partial<LineSpec['promotion']> = () => ({})): StubActivities {
  let snapshots = 0;
  let versions = 1;
  return {
    lineSnapshot: async () => snapshotWithChampion(line, promotion(++snapshots)),
    ingestDrop: async ({ request }) => ({
      status: 'accepted',
      digest: request.digest,
      counts: { train: 10, heldOut: 2, probes: 0 },
      suites: [suite(line, 'new', request.digest.slice(0, 1))],
    }),
    trainCandidate: async () => TRAINED,
    registerCandidate: async () => {
      const version = ++versions;
      return { version, candidateMove: moved(line, 'candidate', null, version) };
    },
    evaluateVersions: passingEvaluation,
    recordGate: async () => ({ id: versions }),
    moveChannel: async (req) => moved(line, req.channel, null, req.to, versions),
    settleCanary: async ({ version }) => moved(line, 'canary', version, 1),
    setDropStatus: async () => undefined,
    recordEvent: async () => undefined,
    sealAuditLog: async () => ({ skipped: 'stub' }),
  };
}
