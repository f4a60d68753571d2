/** numpy's float32 matmul speed, the yardstick the kernel benchmarks report their GFLOP/s against. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The venv that `npm run setup:bench` fills with numpy. */
export const BENCH_PYTHON = join(import.meta.dirname, '..', '.tools', 'bench-venv', 'bin', 'python');

export interface NumpyGflops {
  gflops?: number;
  why?: string;
}

/** numpy's float32 n x n x n matmul GFLOP/s (best of 5) with `python`, or why it could not be measured. */
export function numpyGflopsWith(python: string, n = 1024): NumpyGflops {
  const script = [
    'import time, numpy as np',
    `n=${n}; a=np.random.rand(n,n).astype(np.float32); b=np.random.rand(n,n).astype(np.float32); a@b`,
    'best=min((lambda t: (a@b, time.perf_counter()-t)[1])(time.perf_counter()) for _ in range(5))',
    'print(2*n**3/best/1e9)',
  ].join('\n');
  const run = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  if (run.error) return { why: `${python} could not be run (${run.error.message})` };
  if (run.status !== 0) {
    const last = run.stderr.trim().split('\n').at(-1) ?? `exit ${run.status}`;
    return { why: `${python} -c 'import numpy' failed: ${last} (npm run setup:bench installs numpy into .tools/bench-venv)` };
  }
  return { gflops: Number(run.stdout.trim()) };
}

/** The same, with `python` when given, else python3 when it has numpy, else the bench venv. */
export function numpyGflops(n = 1024, python?: string): NumpyGflops {
  const pythons = python ? [python] : ['python3', ...(existsSync(BENCH_PYTHON) ? [BENCH_PYTHON] : [])];
  let result: NumpyGflops = { why: 'no python3' };
  for (const p of pythons) {
    result = numpyGflopsWith(p, n);
    if (result.gflops !== undefined) return result;
  }
  return result;
}
