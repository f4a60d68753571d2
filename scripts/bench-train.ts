/**
 * Training and evaluation throughput on this machine:
 * `npm run bench:train [-- --preset tiny|small|base] [--backend gpu|node|wasm|cpu] [--steps n] [--json]`.
 * Trains a preset (default `small`: d64, 2 layers, ctx 64) at batch 16 and prints early and late tokens/s
 * (a leak or slowdown shows as a late/early ratio below 1), achieved GFLOP/s against a plain 2-D
 * matmul on the same backend and against numpy's sgemm when python3 has numpy, peak RSS, and the
 * time to evaluate a 1,000-record suite (loss + exact match). With --json the report lines go to stderr
 * and stdout gets one JSON object: backend (precise), preset, parameters, tokensPerSecond, achievedGflops,
 * backendMatmulGflops, numpyGflops, modelOverNumpy (achieved / numpy sgemm 1024^3, both measured here).
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackendInfo } from '../model/backend.ts';
import { PRESETS, type PresetName, flopsPerToken, parameterCount, preset } from '../model/config.ts';
import { evaluateLoss, exactMatch } from '../model/evaluate.ts';
import { Rng } from '../model/random.ts';
import { trainModel } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import { scriptArgs } from '../bench/args.ts';
import { numpyGflops } from '../bench/numpy.ts';

const { values: args } = scriptArgs('bench:train', {
  options: {
    steps: { type: 'string', default: '300' },
    batch: { type: 'string', default: '16' },
    backend: { type: 'string' },
    preset: { type: 'string', default: 'small' },
    json: { type: 'boolean', default: false },
    'eval-records': { type: 'string', default: '1000' },
  },
});
if (!(args.preset! in PRESETS)) {
  console.error(`--preset: unknown preset ${args.preset}; choose one of ${Object.keys(PRESETS).join(', ')}`);
  process.exit(2);
}
const presetName = args.preset as PresetName;
// With --json, stdout carries only the JSON object; the human-readable report goes to stderr.
const say = (line: string) => (args.json ? console.error(line) : console.log(line));
const steps = Number(args.steps);
const batchSize = Number(args.batch);
const evalRecords = Number(args['eval-records']);

const WORDS = 'the a river stone quiet bright falls under over seven green market north harbour lamp wind old new early late'.split(' ');

/** Deterministic pseudo-English documents, so runs are comparable. */
function makeDocs(count: number, seed: number): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const words = Array.from({ length: 8 + rng.int(20) }, () => WORDS[rng.int(WORDS.length)]!);
    return `${i}: ${words.join(' ')}.`;
  });
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** GFLOP/s of a plain n×n×n matmul on the current backend, best of a few timed rounds. */
function matmulGflops(n: number): number {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2) as tf.Tensor2D;
  // Warm-up: the tensor tidy returns is the caller's to dispose (this leaked one tensor per run before).
  const warm = tf.matMul(a, b);
  warm.dataSync();
  warm.dispose();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const reps = 4;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    }
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / (best * 1e6);
}

const info = await initBackendInfo(args.backend ? { force: args.backend } : {});
const config = preset(presetName);
const perToken = flopsPerToken(config);
say(`backend: ${info.label}${info.skipped.length ? ` (skipped ${info.skipped.join('; ')})` : ''}`);
say(
  `model: ${presetName} preset d${config.dModel} ${config.nLayers} layers ${config.nHeads} heads ctx ${config.context}, ` +
    `${fmt(parameterCount(config), 0)} parameters, ${fmt(perToken / 1e3)} kFLOP per training token; batch ${batchSize}`,
);

const npBefore = numpyGflops(1024);

// --- training throughput, early vs late -----------------------------------------------------------
const reportEvery = Math.max(1, Math.floor(steps / 20));
// Per interval: wall-clock tokens/s, and tokens per CPU-second of this process, which other work on
// a shared machine disturbs much less (a real slowdown shows in both; contention in the first only).
const intervals: { step: number; tokensPerSecond: number; tokensPerCpuSecond: number; rss: number }[] = [];
let lastCpu = process.cpuUsage();
let lastStep = 0;
const tensorsBefore = tf.memory().numTensors;
const trainStart = performance.now();
const result = await trainModel({
  config,
  init: initWeights(config, 1),
  sources: [{ name: 'bench', weight: 1, docs: makeDocs(4000, 1) }],
  recipe: { steps, batchSize, learningRate: 2e-3, warmupSteps: Math.min(100, steps), weightDecay: 0.1, gradClip: 1, l2Pull: 0, seed: 1 },
  lossEvery: reportEvery,
  onProgress: (p) => {
    const cpu = process.cpuUsage(lastCpu);
    const tokens = (p.step - lastStep) * batchSize * config.context;
    intervals.push({
      step: p.step,
      tokensPerSecond: p.tokensPerSecond,
      tokensPerCpuSecond: tokens / ((cpu.user + cpu.system) / 1e6),
      rss: process.memoryUsage().rss,
    });
    lastCpu = process.cpuUsage();
    lastStep = p.step;
  },
});
const trainMs = performance.now() - trainStart;
// Throughput per twentieth of the run. The first includes JIT warm-up and first-use costs, so
// "early" is the median of the next four and "late" the median of the last four: medians, because
// the machine is shared and a single interval can catch someone else's burst.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const tps = intervals.map((x) => x.tokensPerSecond);
const early = median(tps.slice(1, 5));
const late = median(tps.slice(-4));
const steady = tps.length > 1 ? tps.slice(1) : tps;
// Equal-sized intervals: tokens over time is the harmonic mean of their rates.
const meanTps = steady.length / steady.reduce((s, x) => s + 1 / x, 0);
say(
  `train: ${steps} steps in ${fmt(trainMs / 1000)} s, loss ${fmt(result.lossCurve[0]!, 2)} -> ${fmt(result.finalLoss, 2)}; ` +
    `tensors before/after ${tensorsBefore}/${tf.memory().numTensors}`,
);
say(
  `  tokens/s: early ${fmt(early, 0)} (steps ${intervals[0]!.step + 1}-${intervals[Math.min(4, intervals.length - 1)]!.step}), ` +
    `late ${fmt(late, 0)} (last ${Math.min(4, intervals.length)} x ${reportEvery} steps), late/early ${fmt((100 * late) / early, 0)}%, ` +
    `mean ${fmt(meanTps, 0)} (target >= 4,000)`,
);
say(`  per ${reportEvery} steps (k tokens/s): ${tps.map((x) => fmt(x / 1000, 1)).join(' ')}`);
const cpuTps = intervals.map((x) => x.tokensPerCpuSecond);
const [cpuEarly, cpuLate] = [median(cpuTps.slice(1, 5)), median(cpuTps.slice(-4))];
say(
  `  tokens per CPU-second: early ${fmt(cpuEarly, 0)}, late ${fmt(cpuLate, 0)}, late/early ${fmt((100 * cpuLate) / cpuEarly, 0)}%; ` +
    `RSS at step ${intervals[Math.min(4, intervals.length - 1)]!.step} ${fmt(intervals[Math.min(4, intervals.length - 1)]!.rss / 2 ** 20, 0)} MiB, ` +
    `at the end ${fmt(intervals.at(-1)!.rss / 2 ** 20, 0)} MiB`,
);
const modelGflops = (meanTps * perToken) / 1e9;
say(`  achieved: ${fmt(modelGflops, 2)} GFLOP/s`);

// --- reference matmuls ----------------------------------------------------------------------------
const mm = matmulGflops(1024);
say(`matmul 1024^3 on ${info.label}: ${fmt(mm, 1)} GFLOP/s; model/matmul ${fmt((100 * modelGflops) / mm, 0)}%`);
// numpy is measured before and after training and the better run kept: on a shared machine one
// measurement can land in someone else's burst, and the ratio should not flatter the model.
const np = [npBefore, numpyGflops(1024)].reduce((a, b) => ((b.gflops ?? -1) > (a.gflops ?? -1) ? b : a));
if (np.gflops !== undefined) {
  say(
    `numpy sgemm 1024^3: ${fmt(np.gflops, 1)} GFLOP/s; ${info.label} matmul/numpy ${fmt((100 * mm) / np.gflops, 0)}%, ` +
      `model/numpy ${fmt((100 * modelGflops) / np.gflops, 1)}%`,
  );
} else {
  say(`numpy sgemm: not measured: ${np.why}`);
}

// --- evaluation of a 1,000-record suite -----------------------------------------------------------
let evaluation: { records: number; seconds: number; meanLoss: number; exactMatch: string } | undefined;
if (evalRecords > 0) {
  const heldOut = makeDocs(evalRecords, 2);
  const probes = heldOut.map((d) => {
    const cut = Math.max(1, d.length - 12);
    return { prompt: d.slice(0, cut), completion: d.slice(cut) };
  });
  const model = LanguageModel.create(config, result.weights);
  const evalStart = performance.now();
  const loss = evaluateLoss(model, heldOut);
  const lossMs = performance.now() - evalStart;
  const em = exactMatch(model, probes);
  const evalMs = performance.now() - evalStart;
  model.dispose();
  evaluation = { records: evalRecords, seconds: evalMs / 1000, meanLoss: loss.meanLoss, exactMatch: `${em.correct}/${em.total}` };
  say(
    `eval: ${evalRecords} records in ${fmt(evalMs / 1000, 2)} s (loss ${fmt(lossMs / 1000, 2)} s over ${fmt(loss.tokens, 0)} tokens: ` +
      `mean ${fmt(loss.meanLoss, 3)}, ppl ${fmt(loss.perplexity, 2)}; exact match ${fmt((evalMs - lossMs) / 1000, 2)} s: ` +
      `${em.correct}/${em.total})`,
  );
}
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
say(`peak RSS: ${fmt(peakRssMiB, 0)} MiB`);
if (args.json) {
  const round = (x: number, digits = 3) => Number(x.toFixed(digits));
  console.log(
    JSON.stringify({
      backend: info.label,
      preset: presetName,
      config,
      parameters: parameterCount(config),
      batchSize,
      steps,
      tokensPerSecond: round(meanTps, 1),
      achievedGflops: round(modelGflops),
      backendMatmulGflops: round(mm),
      numpyGflops: np.gflops === undefined ? null : round(np.gflops),
      modelOverNumpy: np.gflops === undefined ? null : round(modelGflops / np.gflops, 4),
      ...(np.why ? { numpyNotMeasured: np.why } : {}),
      lossFirst: round(result.lossCurve[0]!, 4),
      lossFinal: round(result.finalLoss, 4),
      lateOverEarly: round(late / early),
      tensorsLeaked: tf.memory().numTensors - tensorsBefore,
      peakRssMiB: Math.round(peakRssMiB),
      ...(evaluation ? { evaluation } : {}),
    }),
  );
}
