/**
 * Throughput of the embedded SmolLM2-135M-Instruct on this machine: `npm run bench:llm -- [--quick] [--json]
 * [--backend node|wasm|cpu] [--model file.gguf]`. Prefill, generation at batch 1 and 8 (key-value cache), full-update
 * training at 4 x 128 (and 4 x 256 without --quick), GFLOP/s over numpy sgemm measured in the same run, peak RSS and
 * parity with the committed NumPy reference (bench/llm.ts measures). With --json the progress lines go to stderr and
 * stdout gets one JSON object.
 */
import { existsSync } from 'node:fs';
import { scriptArgs } from '../bench/args.ts';
import { EMBEDDED_LLM, type LlmBenchResult, runLlmBench } from '../bench/llm.ts';

const { values: args } = scriptArgs('bench:llm', {
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    backend: { type: 'string' },
    model: { type: 'string' },
  },
});
const modelPath = args.model ?? EMBEDDED_LLM;
if (!existsSync(modelPath)) {
  console.error(`bench:llm: ${modelPath} is missing; install the embedded model with \`npm run setup:models\``);
  process.exit(1);
}
const say = (line: string) => (args.json ? console.error(line) : console.log(line));

const r = await runLlmBench({ modelPath, quick: args.quick!, ...(args.backend ? { backend: args.backend } : {}), say });

const round = (x: number | null, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));
function forJson(x: LlmBenchResult): Record<string, unknown> {
  return {
    ...x,
    loadSeconds: round(x.loadSeconds, 1),
    prefillTokensPerSecond: round(x.prefillTokensPerSecond, 1),
    prefillGflops: round(x.prefillGflops, 1),
    generateTokensPerSecond: round(x.generateTokensPerSecond, 2),
    generateBatch8TokensPerSecond: round(x.generateBatch8TokensPerSecond, 2),
    trainTokensPerSecond: round(x.trainTokensPerSecond, 1),
    trainGflops: round(x.trainGflops, 1),
    train: x.train.map((t) => ({ ...t, tokensPerSecond: round(t.tokensPerSecond, 1), gflops: round(t.gflops, 1), lossFirst: round(t.lossFirst, 4), lossLast: round(t.lossLast, 4) })),
    numpyGflops: round(x.numpyGflops, 1),
    modelOverNumpy: round(x.modelOverNumpy, 3),
    peakRssMiB: Math.round(x.peakRssMiB),
  };
}

if (args.json) {
  console.log(JSON.stringify(forJson(r)));
} else {
  const fmt = (x: number | null, digits = 1) => (x === null ? 'n/a' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
  const rows: [string, string][] = [
    ['model', `${r.model} (${r.parameters.toLocaleString('en-US')} parameters)`],
    ['backend', r.backend],
    [`prefill (${r.prefillTokens} tokens)`, `${fmt(r.prefillTokensPerSecond)} tokens/s, ${fmt(r.prefillGflops)} GFLOP/s`],
    ['generate, batch 1', `${fmt(r.generateTokensPerSecond, 2)} tokens/s`],
    ['generate, batch 8', `${fmt(r.generateBatch8TokensPerSecond, 2)} tokens/s`],
    ...r.train.map((t): [string, string] => [`train ${t.batch} x ${t.sequence}`, `${fmt(t.tokensPerSecond)} tokens/s, ${fmt(t.gflops)} GFLOP/s`]),
    ['numpy sgemm 1024^3', r.numpyGflops === null ? `not measured: ${r.notes.numpy}` : `${fmt(r.numpyGflops)} GFLOP/s`],
    ['train / numpy', fmt(r.modelOverNumpy, 3)],
    ['peak RSS', `${fmt(r.peakRssMiB, 0)} MiB`],
    ['parity (max rel. logit error)', r.parity.maxRelLogitError === null ? `not measured: ${r.notes.parity}` : `${r.parity.maxRelLogitError.toExponential(2)} (arg-max agree ${r.parity.argmaxAgree})`],
    ['tensor growth', Object.entries(r.tensorGrowth).map(([k, v]) => `${k} ${v}`).join(', ')],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('');
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
}
