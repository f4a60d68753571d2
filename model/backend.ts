/**
 * Chooses the TensorFlow.js backend once per process: tfjs-node-gpu, then tfjs-node, then wasm, then
 * the plain JS cpu backend. The native packages are optional: `npm install` builds them against the
 * TensorFlow wheel from PyPI into .tools/tfjs-native/<cpu|gpu>/ (scripts/install-tfjs-node.mjs), and
 * an npm-installed package is used too; their absence is an ordinary outcome, not an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What scripts/install-tfjs-node.mjs records next to a build that loaded. */
export interface NativeBuild {
  /** The package folder to require. */
  dir: string;
  variant: 'cpu' | 'gpu';
  tensorflow: string;
}

/** The native build made by `npm install` for `variant`, if there is one (its manifest is written last). */
export function nativeBuild(variant: 'cpu' | 'gpu', root = ROOT): NativeBuild | undefined {
  const base = join(root, '.tools', 'tfjs-native', variant);
  try {
    const manifest = JSON.parse(readFileSync(join(base, 'perennial-native.json'), 'utf8')) as { package: string; tensorflow: string };
    const dir = join(base, 'node_modules', ...manifest.package.split('/'));
    return existsSync(dir) ? { dir, variant, tensorflow: manifest.tensorflow } : undefined;
  } catch {
    return undefined;
  }
}

const NATIVE_VARIANT: Record<string, 'cpu' | 'gpu'> = { '@tensorflow/tfjs-node': 'cpu', '@tensorflow/tfjs-node-gpu': 'gpu' };

/** Imports a package; for the native ones, the build under `root` when there is one (it is CommonJS). */
export function packageImporter(root = ROOT): Importer {
  return (specifier) => importFrom(root, specifier);
}

/** The default importer: the project's own native builds, else the packages by name. */
export const importPackage: Importer = packageImporter();

async function importFrom(root: string, specifier: string): Promise<unknown> {
  const variant = NATIVE_VARIANT[specifier];
  const build = variant ? nativeBuild(variant, root) : undefined;
  // TensorFlow logs its CPU-feature and oneDNN banners to stderr at load unless told otherwise.
  if (variant) process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  if (build) return createRequire(import.meta.url)(build.dir) as unknown;
  return import(specifier);
}

/** What the chooser did: the backend in use and why the ones before it were skipped. */
export interface BackendInfo {
  /** tfjs backend name: 'tensorflow' (node or gpu), 'wasm' or 'cpu'. */
  name: string;
  /**
   * What ran, precisely, as recorded with training runs and evaluations: 'tensorflow-cpu 2.20.0',
   * 'tensorflow-gpu 2.20.0 on NVIDIA H100 80GB HBM3', 'wasm-simd', 'wasm' (no SIMD) or 'cpu'.
   */
  label: string;
  choice: BackendChoice;
  /** One line per candidate that was tried and skipped, e.g. "gpu: Cannot find package ...". */
  skipped: string[];
}

/** Which native package registered 'tensorflow' (both register under that name). */
let nativeChoice: 'gpu' | 'node' = 'node';

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
      if (c.choice === 'gpu' || c.choice === 'node') nativeChoice = c.choice;
      const label = describeBackend(c.choice);
      labelCache = { backend: tf.backend(), label };
      return { name: tf.getBackend(), label, choice: c.choice, skipped };
    } catch (err) {
      if (force) throw new Error(`${source}=${force} requested, but it cannot be used: ${firstLine(err)}`);
      skipped.push(`${c.choice}: ${firstLine(err)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised (${skipped.join('; ')})`);
}

let labelCache: { backend: tf.KernelBackend; label: string } | undefined;

/** The native binding's view of itself (tfjs-node's NodeJSKernelBackend.binding). */
interface NativeBinding {
  TF_Version?: string;
  isUsingGpuDevice?: () => boolean;
}

/** Name of the first NVIDIA GPU, from nvidia-smi (TensorFlow's C API does not name devices). */
function gpuName(): string | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim().split('\n')[0]?.trim() || undefined : undefined;
}

/** The precise label of the backend just initialised (see BackendInfo.label). */
function describeBackend(choice: BackendChoice): string {
  const name = tf.getBackend();
  if (name === 'wasm') return tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'wasm-simd' : 'wasm';
  if (name !== 'tensorflow') return name;
  const binding = (tf.backend() as unknown as { binding?: NativeBinding }).binding;
  const version = binding?.TF_Version ?? 'unknown version';
  if (choice !== 'gpu') return `tensorflow-cpu ${version}`;
  // tfjs-node-gpu runs on the CPU when TensorFlow sees no usable GPU: say so rather than claim one.
  if (!binding?.isUsingGpuDevice?.()) return `tensorflow-gpu ${version} on CPU (no GPU visible)`;
  return `tensorflow-gpu ${version} on ${gpuName() ?? 'an unnamed GPU'}`;
}

/**
 * Selects and initialises the backend; idempotent. With `force` (or PERENNIAL_TF_BACKEND) it uses that
 * backend and fails loudly if it cannot load; otherwise it keeps whatever an earlier call chose, or
 * on the first call takes the first candidate that loads. Passing `importer` always re-runs the
 * choice (tests). Returns the precise label of the backend in use (BackendInfo.label), which is what
 * training runs and evaluations record: 'tensorflow-cpu 2.20.0', 'wasm-simd', 'cpu', ...
 */
export async function initBackend(opts: { force?: string; importer?: Importer } = {}): Promise<string> {
  return (await initBackendInfo(opts)).label;
}

/** Like initBackend, but returns the full BackendInfo (choice and skipped candidates). */
export async function initBackendInfo(opts: { force?: string; importer?: Importer } = {}): Promise<BackendInfo> {
  const raw = opts.force ?? process.env[BACKEND_ENV];
  const source = opts.force ? 'force' : BACKEND_ENV;
  const force = raw ? parseChoice(raw, source) : undefined;
  const reuse = current && !opts.importer && (force === undefined || current.force === force);
  if (!reuse || !current) {
    const info = choose(force, source, opts.importer ?? importPackage);
    current = { force, info };
    // A failed choice must not be cached: the next call should try again.
    info.catch(() => {
      if (current?.info === info) current = undefined;
    });
  }
  return current.info;
}

/**
 * Precise label of the backend currently in use ('tensorflow-cpu 2.20.0', 'wasm-simd', 'cpu', ...);
 * recorded with every run. Follows tf.setBackend calls made outside the chooser too.
 */
export function backendName(): string {
  const backend = tf.backend();
  if (labelCache?.backend !== backend) labelCache = { backend, label: describeBackend(nativeChoice) };
  return labelCache.label;
}
