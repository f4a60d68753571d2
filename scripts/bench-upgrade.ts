/**
 * `npm run bench:upgrade`: what a foundation upgrade keeps, gains and costs, and what its orchestration costs.
 *
 * 1. Quality (in-process, bench/upgrade.ts): a foundation, three application lines with their own drops, then two
 *    new foundation versions (the same model trained further on new general text, and a model of another shape
 *    trained from scratch); per line and new foundation: keep the old application model, re-fine-tune the new
 *    foundation on the line's drops (naive), or the product's transfer (replay buffer + distillation).
 * 2. Fan-out (`--fanout N`, on a private stack: PostgreSQL, Temporal dev server, one training worker): N tiny
 *    application lines on a foundation, each with a stable version; base@2 is promoted and one upgrade workflow
 *    moves all N lines; per line, its transfer cycle's wall time minus the time its training-queue activities
 *    took (training, evaluation, flip counting: scheduled to completed, so waiting for the one training worker is
 *    excluded too) is the orchestration overhead.
 *
 * Prints one JSON object with --json (progress goes to stderr).
 *
 *   npm run bench:upgrade -- [--quick] [--fanout N] [--skip-quality] [--json]
 */
import { Command } from 'commander';
import { PRESETS, validateConfig } from '../model/config.ts';
import { DEFAULT_RECIPE } from '../schemas/defaults.ts';
import { runUpgradeBench, type UpgradeBenchResult } from '../bench/upgrade.ts';
import { backendName, initBackend } from '../model/backend.ts';
import { runFanout, type FanoutResult } from './bench-upgrade-fanout.ts';

const opts = new Command('bench:upgrade')
  .option('--quick', 'the tiny shapes and short budgets (minutes)')
  .option('--fanout <n>', 'application lines in the fan-out run (0: skip it)', (v) => Number(v), 10)
  .option('--skip-quality', 'only the fan-out run')
  .option('--seed <n>', 'seed of the scenario and the training', (v) => Number(v), 7)
  .option('--upgrade-steps <n>', "steps of a re-fine-tune or transfer (default: 4x the line's budget, as the loop's transfers)", (v) => Number(v))
  .option('--distill-weight <w>', "the transfer's distillWeight (default: the trainer's, 0.5)", (v) => Number(v))
  .option('--distill-temperature <t>', "the transfer's distillTemperature (default: the trainer's, 2)", (v) => Number(v))
  .option('--json', 'print one JSON object')
  .parse()
  .opts<{ quick?: boolean; fanout: number; skipQuality?: boolean; seed: number; json?: boolean; upgradeSteps?: number; distillWeight?: number; distillTemperature?: number }>();

if (!Number.isInteger(opts.fanout) || opts.fanout < 0) {
  console.error(`--fanout: expected a whole number of lines, got ${opts.fanout}`);
  process.exit(2);
}
const say = (line: string) => console.error(`[bench:upgrade] ${line}`);
const started = performance.now();

let quality: UpgradeBenchResult | undefined;
if (!opts.skipQuality) {
  await initBackend();
  const config = PRESETS.small;
  const otherConfig = opts.quick ? validateConfig({ ...PRESETS.small, dModel: 96 }) : validateConfig({ ...PRESETS.small, dModel: 128, nLayers: 3 });
  const { steps: _s, seed: _seed, replayRatio: _r, replayBudget: _b, checkpointEvery: _c, l2Pull: _l, rewarm: _w, ...base } = DEFAULT_RECIPE;
  quality = await runUpgradeBench({
    config,
    otherConfig,
    foundationSteps: opts.quick ? 250 : 600,
    lineSteps: opts.quick ? 300 : 800,
    recipe: {
      ...base,
      batchSize: opts.quick ? 8 : DEFAULT_RECIPE.batchSize,
      l2Pull: 0,
      ...(opts.distillWeight !== undefined ? { distillWeight: opts.distillWeight } : {}),
      ...(opts.distillTemperature !== undefined ? { distillTemperature: opts.distillTemperature } : {}),
    },
    replayRatio: DEFAULT_RECIPE.replayRatio,
    seed: opts.seed,
    ...(opts.upgradeSteps !== undefined ? { upgradeSteps: opts.upgradeSteps } : {}),
    log: say,
  });
}

let fanout: FanoutResult | undefined;
if (opts.fanout > 0) fanout = await runFanout({ lines: opts.fanout, log: say });

const out = {
  ...(quality ? { backend: backendName(), quick: Boolean(opts.quick) } : {}),
  ...(quality
    ? {
        lines: quality.lines,
        summary: quality.summary,
        naive: quality.naive,
        foundations: quality.foundations,
      }
    : {}),
  ...(fanout ? { fanout } : {}),
  wallMs: Math.round(performance.now() - started),
};
if (opts.json) console.log(JSON.stringify(out));
else {
  if (quality) {
    console.log('line       foundation  strategy  inheritance  flips   general gain (share)  GFLOPs');
    for (const l of quality.lines)
      console.log(
        `${l.line.padEnd(10)} ${l.foundation.padEnd(11)} ${l.strategy.padEnd(9)} ${l.inheritance.toFixed(3).padStart(11)}  ${l.negativeFlipRate.toFixed(3)}  ${l.generalGain.toFixed(3).padStart(7)} (${l.generalGainShare.toFixed(2).padStart(5)})       ${(l.flops / 1e9).toFixed(2).padStart(6)}`,
      );
    console.log(JSON.stringify(quality.summary));
  }
  if (fanout) console.log(JSON.stringify(fanout));
}
process.exit(0);
