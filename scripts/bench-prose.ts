/**
 * `npm run bench:prose`: does the loop's model learn real English? Starts a private stack (its own PostgreSQL,
 * Temporal dev server and workers in a temporary folder), creates a foundation line with the `base` preset and
 * the loop's default recipe for a foundation line of that preset (defaultRecipe: 1,200 steps of 16 x 256 tokens for
 * `base`), sends the committed corpus
 * (bench/corpus/pride-and-prejudice.txt, a public-domain novel) as one plain-text drop, and waits for its cycle. The
 * drop is split the way every drop is (paragraphs, 15% held out by hash); the number is the loop's own
 * held-out loss suite of the version it produced, in bits per byte, against `xz -9` and `gzip -9` on the
 * same held-out bytes. Prints one JSON object (the progress goes to stderr).
 *
 *   npm run bench:prose [-- --steps n] [--preset base|small|tiny] [--quick] [--keep]
 *
 * Bits per byte: the held-out file is the held-out paragraphs, each followed by "\n\n" (what xz and gzip
 * compress). The model codes each paragraph as its bytes and an EOS after BOS (BOS is context, never
 * predicted), so its cost is meanLoss (nats per predicted token, from the loop's evaluation) x predicted
 * tokens / ln 2, and the EOS stands for the "\n\n" it replaces. xz and gzip have no training set, so their
 * fair counterpart is also reported: xz -9 of (train + held-out) minus xz -9 of train, the conditional cost.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { Command } from 'commander';
import { PRESETS, flopsPerToken, parameterCount } from '../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, defaultRecipe } from '../schemas/defaults.ts';
import { sendDrop, waitForCycle } from '../client/ops.ts';
import { compressorBitsPerByte, modelBitsPerByte, splitProse } from '../bench/prose.ts';
import { startPrivateStack } from './stack/private-stack.ts';

const here = dirname(fileURLToPath(import.meta.url));
const opts = new Command('bench:prose')
  .option('--preset <name>', `model shape: ${Object.keys(PRESETS).join(', ')}`, 'base')
  .option('--steps <n>', "training steps of the cycle (default: the loop's for a foundation line of the preset)", (v) => Number(v))
  .option('--corpus <file>', 'plain-text drop of real prose', join(here, '..', 'bench', 'corpus', 'pride-and-prejudice.txt'))
  .option('--quick', 'a smoke run: the small preset, 40 steps')
  .option('--keep', 'keep the temporary folder')
  .parse()
  .opts<{ preset: string; steps?: number; corpus: string; quick?: boolean; keep?: boolean }>();

const presetName = (opts.quick ? 'small' : opts.preset) as keyof typeof PRESETS;
if (!(presetName in PRESETS)) {
  console.error(`--preset: unknown preset ${opts.preset}; choose one of ${Object.keys(PRESETS).join(', ')}`);
  process.exit(2);
}
const steps = opts.steps ?? (opts.quick ? 40 : defaultRecipe('foundation', presetName).steps);
if (!Number.isInteger(steps) || steps < 1) {
  console.error(`--steps: expected a positive integer, got ${opts.steps}`);
  process.exit(2);
}
const say = (line: string) => console.error(`[bench:prose] ${line}`);

// --- the corpus, split as the loop splits it, and the compressors on the same bytes ----------------------
const corpusBytes = readFileSync(opts.corpus);
const split = splitProse(corpusBytes, opts.corpus);
const train = split.trainFile;
const heldOut = split.heldOutFile;
const xz = compressorBitsPerByte('xz', split);
const gzip = compressorBitsPerByte('gzip', split);
say(
  `${opts.corpus}: ${corpusBytes.length} bytes, ${split.train.length} train / ${split.heldOut.length} held-out paragraphs ` +
    `(${train.length} / ${heldOut.length} bytes); held-out xz -9 ${xz.alone.toFixed(3)} bpb, gzip -9 ${gzip.alone.toFixed(3)}, ` +
    `xz -9 given the train part ${xz.givenTrain.toFixed(3)}`,
);

// --- the loop: a private stack, a foundation line, one drop ---------------------------------------------
const config = PRESETS[presetName];
const recipe = { ...defaultRecipe('foundation', presetName), steps };
const { root, stack, client, installation, close } = await startPrivateStack('bench-prose', { taskQueue: 'bench', keep: opts.keep });
const dropFile = join(root, 'drops', 'pride-and-prejudice.txt'); // <data>/drops is a default drop root
const line = 'prose';
try {
  mkdirSync(dirname(dropFile), { recursive: true });
  copyFileSync(opts.corpus, dropFile);
  const registry = installation.registry;
  await registry.ensureLine({
    name: line,
    kind: 'foundation',
    modelConfig: config,
    recipe,
    gateRules: DEFAULT_GATE_RULES,
    promotion: DEFAULT_PROMOTION,
    actor: 'bench',
  });
  say(
    `line ${line}: ${presetName} (${parameterCount(config).toLocaleString('en-US')} parameters), ${steps} steps x ${recipe.batchSize} x ${config.context} tokens; ` +
      `stack ${stack.state.temporal.address}`,
  );
  const started = Date.now();
  const { request } = await sendDrop({ client, taskQueue: 'bench' }, line, dropFile, { requestedBy: 'bench' });
  let lastSaid = 0;
  const summary = await waitForCycle(client, line, request.digest, {
    // The default budget on base is minutes on 2 cores; a long --steps run is hours.
    timeoutMs: 12 * 3600_000,
    onState: (s) => {
      if (Date.now() - lastSaid < 30_000 || !s.current) return;
      lastSaid = Date.now();
      const c = s.current;
      say(`${((Date.now() - started) / 1000).toFixed(0)} s: ${c.phase}${c.steps ? ` step ${c.step ?? 0}/${c.steps} loss ${c.loss?.toFixed(3) ?? '-'}` : ''}`);
    },
  });
  const cycleSeconds = (Date.now() - started) / 1000;
  say(`${summary.verdict}${summary.version ? ` ${line}@${summary.version}` : ''} after ${cycleSeconds.toFixed(0)} s: ${summary.reason}`);
  if (!summary.version) throw new Error(`the cycle produced no version (${summary.verdict}: ${summary.reason})`);
  const version = await registry.getVersion(line, summary.version);
  const run = version.trainingRun ? await registry.getTrainingRun(version.trainingRun) : null;
  const evaluation = (await registry.getEvaluations(line, summary.version)).find((e) => e.kind === 'text');
  const meanLoss = (evaluation?.metrics as { loss?: number } | undefined)?.loss;
  if (meanLoss === undefined) throw new Error(`${line}@${summary.version} has no held-out loss evaluation`);
  const model = modelBitsPerByte(meanLoss, split);
  const training = await trainingTime(summary.cycleId);
  const result = {
    corpus: {
      file: 'bench/corpus/pride-and-prejudice.txt',
      bytes: corpusBytes.length,
      trainBytes: train.length,
      heldOutBytes: heldOut.length,
      heldOutParagraphs: split.heldOut.length,
    },
    preset: presetName,
    parameters: parameterCount(config),
    backend: version.backend,
    steps,
    batchSize: recipe.batchSize,
    trainingTokens: run?.tokens ?? steps * recipe.batchSize * config.context,
    trainingFlops: run?.flops ?? steps * recipe.batchSize * config.context * flopsPerToken(config),
    // From the cycle's history: a retried training activity resumes from its last checkpoint, and the run's
    // own wallMs counts the steps behind its weights once, not the work a killed attempt lost.
    trainingSeconds: training.seconds,
    trainingAttempts: training.attempts,
    tokensPerSecond: training.seconds > 0 ? (run?.tokens ?? 0) / training.seconds : null,
    cycleSeconds,
    verdict: summary.verdict,
    version: `${line}@${summary.version}`,
    finalTrainLoss: run?.finalLoss ?? null,
    heldOut: {
      meanLossNats: meanLoss,
      predictedTokens: split.predictedTokens,
      bitsPerToken: meanLoss / Math.LN2,
      modelBitsPerByte: model,
      xz9BitsPerByte: xz.alone,
      gzip9BitsPerByte: gzip.alone,
      xz9GivenTrainBitsPerByte: xz.givenTrain,
      gzip9GivenTrainBitsPerByte: gzip.givenTrain,
    },
    beatsXz9: model < xz.alone,
    beatsXz9GivenTrain: model < xz.givenTrain,
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
  };
  say(
    `held-out: model ${result.heldOut.modelBitsPerByte.toFixed(3)} bpb, xz -9 ${result.heldOut.xz9BitsPerByte.toFixed(3)}, gzip -9 ${result.heldOut.gzip9BitsPerByte.toFixed(3)}, ` +
      `xz -9 given train ${result.heldOut.xz9GivenTrainBitsPerByte.toFixed(3)}`,
  );
  console.log(JSON.stringify(result, null, 2));
} finally {
  await close();
}

/** Wall time of the cycle's trainCandidate activity, first start to completion (retries included), and its attempts. */
async function trainingTime(cycleId: string): Promise<{ seconds: number; attempts: number }> {
  const { EventType } = proto.temporal.api.enums.v1;
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
  const events = (await client.workflow.getHandle(cycleId).fetchHistory()).events ?? [];
  const scheduled = new Map<number, { at: number; name: string }>();
  let seconds = 0;
  let attempts = 0;
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(Number(e.eventId), { at: ms(e.eventTime), name: s.activityType?.name ?? '' });
    const started = e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED ? e.activityTaskStartedEventAttributes : null;
    if (started && scheduled.get(Number(started.scheduledEventId))?.name === 'trainCandidate') attempts = Math.max(attempts, started.attempt ?? 1);
    const done = e.activityTaskCompletedEventAttributes;
    const what = done ? scheduled.get(Number(done.scheduledEventId)) : undefined;
    if (what?.name === 'trainCandidate') seconds += (ms(e.eventTime) - what.at) / 1000;
  }
  return { seconds, attempts };
}
