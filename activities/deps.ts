/** What activities are built from. Workers wire real ones; tests wire real ones on their own names. */
import type { Client } from '@temporalio/client';
import type { ArtifactStore } from '../registry/artifacts.ts';
import type { Registry } from '../registry/registry.ts';
import type { DropCache } from '../domain/suites.ts';

export interface ActivityDeps {
  registry: Registry;
  store: ArtifactStore;
  drops: DropCache;
  /** Root of the installation's files (quarantine lives under it). */
  dataDir: string;
  /** For signals to the line workflows (progress, schedule ticks). */
  client: Client;
  /** The git revision (or package version) recorded with every version. */
  codeRevision: string;
  /** Task queue of the workflow worker, for signal-with-start of line workflows. */
  workflowQueue: string;
  /** How often a live training run heartbeats between its progress reports (default TRAINING_HEARTBEAT_MS). */
  trainingHeartbeatMs?: number;
}
