/**
 * Chooses the TensorFlow.js backend once per process: tfjs-node-gpu, then tfjs-node, then wasm, then
 * the plain JS cpu backend. The native packages are optional (their install downloads libtensorflow),
 * so they are loaded with a dynamic import and their absence is an ordinary outcome, not an error.
 */
import * as tf from '@tensorflow/tfjs';

/** A backend the chooser can be asked for (PERENNIAL_TF_BACKEND or `force`). */
export type BackendChoice = 'gpu' | 'node' | 'wasm' | 'cpu';

/** Loads a package by name; injectable so tests can simulate absent, present or broken packages. */
export type Importer = (specifier: string) => Promise<unknown>;

/** Environment variable that forces one backend: gpu | node | wasm | cpu. */
export const BACKEND_ENV = 'PERENNIAL_TF_BACKEND';

interface Candidate {
  choice: BackendChoice;
  /** Package whose import registers the backend; cpu ships inside @tensorflow/tfjs. */
  pkg?: string;
  /** Name the backend registers under in tfjs. */
  tfName: string;
}

const CANDIDATES: readonly Candidate[] = [
  { choice: 'gpu', pkg: '@tensorflow/tfjs-node-gpu', tfName: 'tensorflow' },
  { choice: 'node', pkg: '@tensorflow/tfjs-node', tfName: 'tensorflow' },
  { choice: 'wasm', pkg: '@tensorflow/tfjs-backend-wasm', tfName: 'wasm' },
  { choice: 'cpu', tfName: 'cpu' },
];

const defaultImporter: Importer = (specifier) => import(specifier);

/** What the chooser did: the backend in use and why the ones before it were skipped. */
export interface BackendInfo {
  /** tfjs backend name: 'tensorflow' (node or gpu), 'wasm' or 'cpu'. */
  name: string;
  choice: BackendChoice;
  /** One line per candidate that was tried and skipped, e.g. "gpu: Cannot find package ...". */
  skipped: string[];
}

let current: { force: BackendChoice | undefined; info: Promise<BackendInfo> } | undefined;

function parseChoice(value: string, source: string): BackendChoice {
  const v = value.trim().toLowerCase();
  if (v === 'gpu' || v === 'node' || v === 'wasm' || v === 'cpu') return v;
  throw new Error(`${source}=${JSON.stringify(value)} is not one of gpu, node, wasm, cpu`);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

async function choose(force: BackendChoice | undefined, source: string, importer: Importer): Promise<BackendInfo> {
  // Production mode: skips debug checks and silences tfjs's "install tfjs-node" advert on cpu.
  tf.env().set('PROD', true);
  const skipped: string[] = [];
  for (const c of force ? CANDIDATES.filter((x) => x.choice === force) : CANDIDATES) {
    try {
      if (c.pkg) await importer(c.pkg);
      if (!(await tf.setBackend(c.tfName))) throw new Error(`backend '${c.tfName}' failed to initialise`);
      await tf.ready();
      return { name: tf.getBackend(), choice: c.choice, skipped };
    } catch (err) {
      if (force) throw new Error(`${source}=${force} requested, but it cannot be used: ${firstLine(err)}`);
      skipped.push(`${c.choice}: ${firstLine(err)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised (${skipped.join('; ')})`);
}

/**
 * Selects and initialises the backend; idempotent. With `force` (or PERENNIAL_TF_BACKEND) it uses that
 * backend and fails loudly if it cannot load; otherwise it keeps whatever an earlier call chose, or
 * on the first call takes the first candidate that loads. Passing `importer` always re-runs the
 * choice (tests). Returns the tfjs backend name in use: 'tensorflow', 'wasm' or 'cpu'.
 */
export async function initBackend(opts: { force?: string; importer?: Importer } = {}): Promise<string> {
  return (await initBackendInfo(opts)).name;
}

/** Like initBackend, but returns the full BackendInfo (choice and skipped candidates). */
export async function initBackendInfo(opts: { force?: string; importer?: Importer } = {}): Promise<BackendInfo> {
  const raw = opts.force ?? process.env[BACKEND_ENV];
  const source = opts.force ? 'force' : BACKEND_ENV;
  const force = raw ? parseChoice(raw, source) : undefined;
  const reuse = current && !opts.importer && (force === undefined || current.force === force);
  if (!reuse || !current) {
    const info = choose(force, source, opts.importer ?? defaultImporter);
    current = { force, info };
    // A failed choice must not be cached: the next call should try again.
    info.catch(() => {
      if (current?.info === info) current = undefined;
    });
  }
  return current.info;
}

/** The tfjs backend currently in use ('tensorflow', 'wasm', 'cpu', ...); recorded with every run. */
export function backendName(): string {
  return tf.getBackend();
}
