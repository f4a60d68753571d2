import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKEND_ENV, type Importer, backendName, importPackage, initBackend, initBackendInfo, nativeBuild, packageImporter } from '../../model/backend.ts';
import { trainModel } from '../../model/train.ts';
import { preset } from '../../model/config.ts';
import { initWeights } from '../../model/transformer.ts';
import { CORPUS, recipe } from './fixtures.ts';

const notFound = (pkg: string) =>
  Object.assign(new Error(`Cannot find package '${pkg}' imported from /work/main/model/backend.ts`), {
    code: 'ERR_MODULE_NOT_FOUND',
  });

/** Whether a test registered the stand-in 'tensorflow' backend (the real addon registers once per process). */
let fakeNative = false;

/** Simulates which optional packages exist: 'absent', 'broken' (import throws), or 'present'. */
function importer(state: Record<string, 'absent' | 'broken' | 'present'>, calls: string[] = []): Importer {
  return async (pkg) => {
    calls.push(pkg);
    const s = state[pkg] ?? 'absent';
    if (s === 'absent') throw notFound(pkg);
    if (s === 'broken') throw new Error('libtensorflow.so.2: cannot open shared object file');
    if (pkg === '@tensorflow/tfjs-backend-wasm') return import(pkg);
    // A present native package registers the 'tensorflow' backend on import; stand in with a cpu backend.
    tf.registerBackend('tensorflow', () => new tf.MathBackendCPU(), 3);
    fakeNative = true;
    return {};
  };
}

const GPU = '@tensorflow/tfjs-node-gpu';
const NODE = '@tensorflow/tfjs-node';
const WASM = '@tensorflow/tfjs-backend-wasm';

afterEach(async () => {
  delete process.env[BACKEND_ENV];
  if (fakeNative && tf.findBackendFactory('tensorflow')) {
    await initBackend({ force: 'cpu' });
    tf.removeBackend('tensorflow');
  }
  fakeNative = false;
});

describe('backend chooser', () => {
  it('falls back to wasm when the native packages are absent, in order gpu, node, wasm', async () => {
    const calls: string[] = [];
    const info = await initBackendInfo({ importer: importer({ [WASM]: 'present' }, calls) });
    expect(info.name).toBe('wasm');
    expect(info.choice).toBe('wasm');
    expect(calls).toEqual([GPU, NODE, WASM]);
    expect(info.skipped[0]).toMatch(/^gpu: Cannot find package/);
    expect(backendName()).toBe('wasm-simd');
  });

  it('falls back past a package whose import throws', async () => {
    const info = await initBackendInfo({ importer: importer({ [GPU]: 'broken', [NODE]: 'absent', [WASM]: 'present' }) });
    expect(info.name).toBe('wasm');
    expect(info.skipped[0]).toMatch(/gpu: libtensorflow/);
  });

  it('uses the native backend when a package is present', async () => {
    const calls: string[] = [];
    const info = await initBackendInfo({ importer: importer({ [NODE]: 'present', [WASM]: 'present' }, calls) });
    expect(info).toMatchObject({ name: 'tensorflow', choice: 'node' });
    expect(calls).toEqual([GPU, NODE]);
  });

  it('falls back to cpu when wasm fails too', async () => {
    const info = await initBackendInfo({ importer: importer({ [WASM]: 'broken' }) });
    expect(info).toMatchObject({ name: 'cpu', choice: 'cpu' });
    expect(info.skipped).toHaveLength(3);
  });

  it('obeys force and the environment variable, and fails loudly when the forced one is missing', async () => {
    expect(await initBackend({ force: 'cpu', importer: importer({ [WASM]: 'present' }) })).toBe('cpu');
    process.env[BACKEND_ENV] = 'wasm';
    expect(await initBackend({ importer: importer({ [WASM]: 'present' }) })).toBe('wasm-simd');
    process.env[BACKEND_ENV] = 'gpu';
    await expect(initBackend({ importer: importer({}) })).rejects.toThrow(/PERENNIAL_TF_BACKEND=gpu requested.*Cannot find package/);
    process.env[BACKEND_ENV] = 'tpu';
    await expect(initBackend()).rejects.toThrow(/not one of gpu, node, wasm, cpu/);
  });

  it('is idempotent: later calls reuse the first choice without importing again', async () => {
    const calls: string[] = [];
    await initBackend({ importer: importer({ [WASM]: 'present' }, calls) });
    expect(await initBackend()).toBe('wasm-simd');
    expect(await initBackend({ force: 'wasm' })).toBe('wasm-simd');
    expect(calls).toEqual([GPU, NODE, WASM]);
  });

  it('in the real environment uses the native build when npm install made one, else falls back to wasm', async () => {
    const installed = [GPU, NODE].filter((pkg) => {
      try {
        createRequire(import.meta.url).resolve(pkg);
        return true;
      } catch {
        return false;
      }
    });
    const info = await initBackendInfo({ importer: importPackage });
    if (installed.length > 0 || nativeBuild('cpu') || nativeBuild('gpu')) {
      expect(info.name).toBe('tensorflow'); // a machine with tfjs-node: the chooser must take it
      expect(info.label).toMatch(/^tensorflow-(cpu|gpu) \d+\.\d+\.\d+/);
      return;
    }
    expect(info.name).toBe('wasm');
    expect(info.skipped.map((s) => s.split(':')[0])).toEqual(['gpu', 'node']);
    expect(tf.sum(tf.tensor1d([1, 2, 3])).dataSync()[0]).toBe(6);
  });
});

describe('a native build that does not load', () => {
  it('is skipped with its cause and the chooser falls back to wasm (an addon that is not a shared object)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'perennial-native-'));
    try {
      const base = join(root, '.tools', 'tfjs-native', 'cpu');
      const pkg = join(base, 'node_modules', '@tensorflow', 'tfjs-node');
      mkdirSync(join(pkg, 'lib', 'napi-v8'), { recursive: true });
      writeFileSync(join(base, 'perennial-native.json'), JSON.stringify({ package: '@tensorflow/tfjs-node', tensorflow: '2.20.0' }));
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node', main: 'index.js' }));
      writeFileSync(join(pkg, 'index.js'), "require('./lib/napi-v8/tfjs_binding.node');");
      writeFileSync(join(pkg, 'lib', 'napi-v8', 'tfjs_binding.node'), 'not an ELF file');
      expect(nativeBuild('cpu', root)?.dir).toBe(pkg);
      const info = await initBackendInfo({ importer: packageImporter(root) });
      expect(info.name).toBe('wasm');
      expect(info.skipped[1]).toMatch(/^node: .*(invalid ELF header|too short)/);
      await expect(initBackend({ force: 'node', importer: packageImporter(root) })).rejects.toThrow(/force=node requested, but it cannot be used/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('backend label (recorded with every training run and evaluation)', () => {
  it('names wasm with its SIMD build and the JS cpu backend as cpu, in initBackend, backendName and trainModel', async () => {
    expect(await initBackend({ force: 'wasm' })).toBe('wasm-simd');
    expect((await initBackendInfo({ force: 'wasm' })).label).toBe('wasm-simd');
    expect(backendName()).toBe('wasm-simd');
    const config = preset('tiny');
    const run = { config, init: initWeights(config, 1), sources: [{ name: 'd', weight: 1, docs: CORPUS }], recipe: recipe({ steps: 1, batchSize: 1 }) };
    expect((await trainModel(run)).backend).toBe('wasm-simd');
    expect(await initBackend({ force: 'cpu' })).toBe('cpu');
    expect(backendName()).toBe('cpu');
  });

  it.runIf(nativeBuild('cpu') !== undefined)('names the native CPU build with its TensorFlow version (tensorflow-cpu 2.20.0)', async () => {
    expect(await initBackend({ force: 'node' })).toBe(`tensorflow-cpu ${nativeBuild('cpu')!.tensorflow}`);
    expect(backendName()).toBe('tensorflow-cpu 2.20.0');
    await initBackend({ force: 'wasm' });
    expect(backendName()).toBe('wasm-simd');
  });
});
