#!/usr/bin/env node
// Builds the native TensorFlow backend for TensorFlow.js from the package registries alone. Runs as npm's
// postinstall (after the Temporal CLI); `npm run setup:native` reruns it. tfjs-node's own install script
// downloads libtensorflow 2.9.1 from a bucket that refuses downloads (tensorflow/tfjs#8742), so instead:
//   1. the TensorFlow wheel from PyPI (`tensorflow-cpu==2.20.0`, ~260 MB; `tensorflow[and-cuda]` for gpu) is
//      downloaded with pip into .tools/wheels/ and its sha256 checked (a cached wheel is checked again);
//   2. @tensorflow/tfjs-node(-gpu)@4.22.0 is installed with its scripts off into a private staging folder
//      under .tools/tfjs-native/, its deps/lib gets the wheel's libtensorflow_cc.so.2 and
//      libtensorflow_framework.so.2 (they export the TF_* and TFE_* C APIs), deps/include its C headers;
//   3. npm's bundled node-gyp builds the addon against the local Node's headers (~10-20 s, offline);
//   4. a child process loads it and runs a matmul; only then is the staging folder renamed into place.
// The backend chooser (model/backend.ts) loads .tools/tfjs-native/<variant>/ when its manifest is there.
// Any failure (no Python 3 or pip, no C++ compiler, a bad checksum, a failed build, an addon that does not
// load) prints ONE line naming the cause and the fallback (wasm), removes what it staged, and exits 0:
// npm install never fails because of this. PERENNIAL_NATIVE_TF chooses: cpu (default), gpu, skip.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS = join(root, '.tools');
const WHEELS = join(TOOLS, 'wheels');
const NATIVE = join(TOOLS, 'tfjs-native');
const TFJS_NODE_VERSION = '4.22.0';
const TF_VERSION = '2.20.0';
// The wheels are pinned to one Python tag and platform whatever the local Python is: the libraries inside do
// not depend on Python, and one pinned file can carry one pinned checksum.
const PY_TAG = { version: '3.11', abi: 'cp311', platform: 'manylinux2014_x86_64' };

/** What each variant builds. `sha256` pins the wheel (from PyPI's listing of that exact file). */
const VARIANTS = {
  cpu: {
    pkg: '@tensorflow/tfjs-node',
    requirement: `tensorflow-cpu==${TF_VERSION}`,
    wheel: `tensorflow_cpu-${TF_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`,
    sha256: 'cf756bbe2d256e942ab5d0ad2c858fb40017581494febdb4387c149b1afde780',
  },
  gpu: {
    pkg: '@tensorflow/tfjs-node-gpu',
    // The and-cuda extra brings cuDNN, cuBLAS and the CUDA runtime as nvidia-* wheels; the wheel's libraries
    // find them through their RUNPATH ($ORIGIN/../nvidia/*/lib), which the layout below reproduces.
    requirement: `tensorflow[and-cuda]==${TF_VERSION}`,
    wheel: `tensorflow-${TF_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`,
    // Pins tensorflow itself; the nvidia-* wheels come as pip resolves the extra's ranges (checked by pip).
    sha256: '481499fd0f824583de8945be61d5e827898cdaa4f5ea1bc2cc28ca2ccff8229e',
  },
};

const MANIFEST = 'perennial-native.json';
const KEEP_NPM_ENV = /^npm_config_(registry|cache|userconfig|globalconfig|proxy|https_proxy|noproxy|strict_ssl|cafile|ca|cert|key|@.*:registry|\/\/.*)$/i;

class Skip extends Error {}

function log(line) {
  console.log(`perennial: ${line}`);
}

function sha256File(path) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, ...opts });
  if (r.error) throw new Skip(`${cmd} could not be run (${r.error.code ?? r.error.message})`);
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`;
    throw new Skip(`${opts.what ?? cmd} failed: ${tail.slice(0, 300)}`);
  }
  return r.stdout;
}

function findPython() {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-c', 'import sys, pip; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === '3') return py;
  }
  throw new Skip('Python 3 with pip was not found');
}

function findCompiler() {
  for (const cxx of [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean)) {
    if (spawnSync(cxx, ['--version']).status === 0) return cxx;
  }
  throw new Skip('no C++ compiler was found (set CXX, or install g++)');
}

/** npm's bundled node-gyp: next to the npm that runs this postinstall, else next to this Node. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Skip("npm's bundled node-gyp was not found");
  return found;
}

/** Downloads (or reuses) the variant's wheel(s) into .tools/wheels and checks the pinned checksum. */
async function fetchWheels(python, variant) {
  const v = VARIANTS[variant];
  mkdirSync(WHEELS, { recursive: true });
  const cached = join(WHEELS, v.wheel);
  if (existsSync(cached) && v.sha256 && (await sha256File(cached)) !== v.sha256) {
    log(`cached ${v.wheel} fails its checksum: downloading it again`);
    rmSync(cached);
  }
  if (!existsSync(cached)) {
    const tmp = join(WHEELS, `.download-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    try {
      const args = ['-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--only-binary=:all:'];
      args.push('--python-version', PY_TAG.version, '--implementation', 'cp', '--abi', PY_TAG.abi);
      // The nvidia-* wheels carry newer manylinux tags than tensorflow's own; all run on glibc >= 2.28.
      for (const platform of [PY_TAG.platform, 'manylinux_2_27_x86_64', 'manylinux_2_28_x86_64']) args.push('--platform', platform);
      args.push('--dest', tmp);
      // cpu needs the one wheel; gpu needs tensorflow's nvidia-* dependencies (and pip fetches its Python ones too).
      if (variant === 'cpu') args.push('--no-deps');
      args.push(v.requirement);
      log(`downloading ${v.requirement} from PyPI into .tools/wheels (cached for later installs) ...`);
      run(python, args, { what: `pip download ${v.requirement}` });
      const got = join(tmp, v.wheel);
      if (!existsSync(got)) throw new Skip(`pip did not produce ${v.wheel}`);
      if (v.sha256) {
        const sum = await sha256File(got);
        if (sum !== v.sha256) throw new Skip(`${v.wheel} failed its checksum (sha256 ${sum}, expected ${v.sha256})`);
      }
      for (const f of readdirNames(tmp)) if (f === v.wheel || f.startsWith('nvidia_')) renameSync(join(tmp, f), join(WHEELS, f));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const wheels = [cached];
  if (variant === 'gpu')
    wheels.push(
      ...readdirNames(WHEELS)
        .filter((f) => f.startsWith('nvidia_') && f.endsWith('.whl'))
        .map((f) => join(WHEELS, f)),
    );
  return wheels;
}

function readdirNames(dir) {
  return existsSync(dir) ? execFileSync('ls', ['-1', dir], { encoding: 'utf8' }).split('\n').filter(Boolean) : [];
}

/** Extracts from the wheel the two libraries into deps/lib and the C headers into deps/include. */
function extract(python, wheels, pkgDir) {
  const script = `
import sys, zipfile, os
pkg = sys.argv[1]
tf, extras = sys.argv[2], sys.argv[3:]
lib = os.path.join(pkg, 'deps', 'lib'); inc = os.path.join(pkg, 'deps', 'include')
z = zipfile.ZipFile(tf)
heads = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/', 'tensorflow/include/tsl/', 'tensorflow/include/xla/')
for i in z.infolist():
    n = i.filename
    if n in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'):
        z.extract(i, lib); os.replace(os.path.join(lib, n), os.path.join(lib, os.path.basename(n)))
    elif n.startswith(heads) and n.endswith('.h'):
        dest = os.path.join(inc, n[len('tensorflow/include/'):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(i) as src, open(dest, 'wb') as out: out.write(src.read())
# CUDA wheels (gpu): nvidia/<part>/lib/*.so* next to deps/lib, where the TensorFlow libraries' RUNPATH looks.
for w in extras:
    for i in zipfile.ZipFile(w).infolist():
        if i.filename.startswith('nvidia/') and '/lib/' in i.filename and '.so' in i.filename:
            zipfile.ZipFile(w).extract(i, os.path.join(pkg, 'deps'))
os.rmdir(os.path.join(lib, 'tensorflow'))
`;
  run(python, ['-c', script, pkgDir, ...wheels], { what: 'extracting the TensorFlow libraries from the wheel' });
  const lib = join(pkgDir, 'deps', 'lib');
  for (const name of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
    if (!existsSync(join(lib, name))) throw new Skip(`the wheel has no tensorflow/${name}`);
  }
  // The addon links -ltensorflow -ltensorflow_framework; at run time it needs the sonames (*.so.2).
  symlinkSync('libtensorflow_cc.so.2', join(lib, 'libtensorflow.so'));
  symlinkSync('libtensorflow_framework.so.2', join(lib, 'libtensorflow_framework.so'));
}

/** Loads the built package in a fresh Node and runs a matmul; returns the TensorFlow version it reports. */
function checkLoads(pkgDir) {
  const probe = `
const tf = require(${JSON.stringify(pkgDir)});
const c = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync();
if (tf.getBackend() !== 'tensorflow' || c.join() !== '19,22,43,50') throw new Error('matmul on ' + tf.getBackend() + ' gave ' + c.join());
console.log(JSON.stringify({ tensorflow: tf.backend().binding.TF_Version, tfjsNode: tf.version['tfjs-node'] }));
`;
  const out = run(process.execPath, ['-e', probe], { cwd: root, what: 'loading the built addon' });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function readManifest(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8'));
  } catch {
    return undefined;
  }
}

async function install(variant) {
  if (!(variant in VARIANTS)) throw new Skip(`PERENNIAL_NATIVE_TF=${variant} is not one of cpu, gpu, skip`);
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Skip(`this build is for linux x64, not ${process.platform} ${process.arch}`);
  const v = VARIANTS[variant];
  const final = join(NATIVE, variant);
  const pkgOf = (dir) => join(dir, 'node_modules', ...v.pkg.split('/'));
  const have = readManifest(final);
  if (have?.tfjsNode === TFJS_NODE_VERSION && have?.tensorflow === TF_VERSION && have?.node === process.version) {
    try {
      checkLoads(pkgOf(final));
      log(`native TensorFlow ${TF_VERSION} (${variant}) already built in .tools/tfjs-native/${variant}`);
      return;
    } catch (err) {
      log(`rebuilding native TensorFlow: the earlier build does not load (${err.message})`);
      rmSync(final, { recursive: true, force: true }); // never leave a broken build for the chooser to find
    }
  }
  const python = findPython();
  findCompiler();
  const nodeGyp = findNodeGyp();
  const nodeDir = join(dirname(process.execPath), '..');
  if (!existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) throw new Skip(`Node's headers are not in ${nodeDir}/include/node`);
  const started = performance.now();
  const wheels = await fetchWheels(python, variant);

  const stage = join(NATIVE, `.stage-${variant}-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  try {
    writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'perennial-tfjs-native', private: true }));
    run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `${v.pkg}@${TFJS_NODE_VERSION}`], {
      cwd: stage,
      what: `npm install ${v.pkg}@${TFJS_NODE_VERSION}`,
      // This runs inside the project's own npm install: keep that run's settings (omit, save, global, ...)
      // out, but keep where packages come from (registry, cache, proxies, certificates).
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || KEEP_NPM_ENV.test(k))),
    });
    // tfjs-node must register into the project's own @tensorflow/tfjs: drop the staged copies, so that
    // require('@tensorflow/tfjs') from the package walks up to the project's node_modules.
    for (const name of readdirNames(join(stage, 'node_modules', '@tensorflow'))) {
      if (`@tensorflow/${name}` !== v.pkg) rmSync(join(stage, 'node_modules', '@tensorflow', name), { recursive: true, force: true });
    }
    const pkgDir = pkgOf(stage);
    extract(python, wheels, pkgDir);
    const napi = 8;
    run(
      process.execPath,
      [
        nodeGyp,
        'rebuild',
        `--nodedir=${nodeDir}`,
        '--loglevel=error',
        `--napi_build_version=${napi}`,
        '--module_name=tfjs_binding',
        `--module_path=${join(pkgDir, 'lib', `napi-v${napi}`)}`,
      ],
      { cwd: pkgDir, what: 'node-gyp rebuild of the tfjs-node addon', env: { ...process.env, JOBS: '2' } },
    );
    if (!existsSync(join(pkgDir, 'lib', `napi-v${napi}`, 'tfjs_binding.node'))) throw new Skip('node-gyp built no tfjs_binding.node');
    // Headers and object files are only needed for the build.
    rmSync(join(pkgDir, 'deps', 'include'), { recursive: true, force: true });
    rmSync(join(pkgDir, 'build'), { recursive: true, force: true });
    const loaded = checkLoads(pkgDir);
    writeFileSync(
      join(stage, MANIFEST),
      `${JSON.stringify({ variant, package: v.pkg, tfjsNode: TFJS_NODE_VERSION, tensorflow: loaded.tensorflow, wheel: v.wheel, wheelSha256: v.sha256 ?? null, node: process.version, builtAt: new Date().toISOString() }, null, 2)}\n`,
    );
    rmSync(final, { recursive: true, force: true });
    renameSync(stage, final);
    log(
      `built native TensorFlow ${loaded.tensorflow} (${v.pkg}@${TFJS_NODE_VERSION}, ${variant}) into .tools/tfjs-native/${variant} in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const variant = (process.env.PERENNIAL_NATIVE_TF ?? 'cpu').trim().toLowerCase();
if (variant === 'skip') {
  log('PERENNIAL_NATIVE_TF=skip: native TensorFlow not built; training uses the wasm backend');
} else {
  try {
    await install(variant);
  } catch (err) {
    const why = err instanceof Skip ? err.message : `unexpected error: ${err?.message ?? err}`;
    log(`native TensorFlow not built (${why.split('\n')[0]}); training uses the wasm backend`);
  }
}
