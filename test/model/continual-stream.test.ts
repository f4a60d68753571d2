import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { mlpWidth, preset } from '../../model/config.ts';
import { assemble } from '../../bench/benchmark.ts';
import { dormantUnits, freshReference, plasticityRatio, probeLearning, probeTask } from '../../bench/plasticity.ts';
import { type StreamResult, runStream, streamCache } from '../../bench/runner.ts';
import { standardStrategies, type UpdateRecipe } from '../../bench/strategies.ts';
import { dropFromBytes, readDropFolder, type StreamDrop } from '../../bench/stream.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import { cloneWeights } from '../../model/weights.ts';
import { streamScenario } from '../../bench/scenario.ts';

// A tiny model with room for a whole fact ("The Zorvex lamp costs 42 credits." is ~36 tokens).
const config = preset('tiny', { context: 64 });
const recipe: UpdateRecipe = { steps: 150, batchSize: 8, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 10, weightDecay: 0.01, gradClip: 1 };
const strategies = standardStrategies({ replayRatio: 0.5, replayBudget: 5000, l2Pull: 0 });

function stream(): StreamDrop[] {
  // Three catalogues of new products, no base: the model starts fresh and each drop is new facts.
  const s = streamScenario(3, { drops: 3, productsPerDrop: 4, paragraphs: 1, withLoad: 'none' });
  return s.drops.map((d) => dropFromBytes(new TextEncoder().encode(d.content), d.name));
}

describe('the stream runner on a tiny 3-drop stream', () => {
  let naive: StreamResult;
  let replay: StreamResult;
  let tensorsBefore: number;
  let tensorsAfter: number;

  beforeAll(async () => {
    await initBackend({ force: 'wasm' });
    const drops = stream();
    const model = { config, start: initWeights(config, 1), initSeed: 1 };
    const cache = streamCache();
    tensorsBefore = tf.memory().numTensors;
    naive = await runStream({ drops, model, strategy: strategies.naive, recipe, cache });
    replay = await runStream({ drops, model, strategy: strategies.replay, recipe, cache });
    tensorsAfter = tf.memory().numTensors;
  });

  it('records the matrix, the compute per drop, and frees every tensor', () => {
    expect(naive.matrix).toHaveLength(4); // the starting model and one row per drop
    expect(naive.suites.every((s) => s.drop >= 1 && s.drop <= 3)).toBe(true);
    expect(naive.matrix.every((row) => row.length === naive.suites.length && row.every(Number.isFinite))).toBe(true);
    expect(naive.compute.map((c) => c.steps)).toEqual([150, 150, 150]);
    expect(naive.compute[0]!.tokens).toBe(150 * 8 * 64);
    expect(naive.total.flops).toBeCloseTo(3 * naive.compute[0]!.flops, 0);
    // Same budget for every continuing strategy: equal compute accounting.
    expect(replay.total.tokens).toBe(naive.total.tokens);
    expect(tensorsAfter).toBe(tensorsBefore);
  });

  it('naive fine-tuning learns each drop and forgets the first one; replay forgets less', () => {
    const first = naive.suites.findIndex((s) => s.drop === 1 && s.metric === 'exactMatch');
    const learned = naive.matrix[1]![first]!;
    const naiveFinal = naive.matrix[3]![first]!;
    const replayFinal = replay.matrix[3]![first]!;
    expect(learned).toBeGreaterThanOrEqual(0.75);
    expect(learned - naiveFinal).toBeGreaterThanOrEqual(0.25);
    expect(naive.metrics.exactMatch.backwardTransfer).toBeLessThan(-0.2);
    expect(replayFinal).toBeGreaterThan(naiveFinal);
    expect(replay.metrics.exactMatch.backwardTransfer).toBeGreaterThan(naive.metrics.exactMatch.backwardTransfer);
    expect(replay.metrics.exactMatch.worstForgetting).toBeLessThan(naive.metrics.exactMatch.worstForgetting);
  });

  it('summarises strategies against the compute of retraining', () => {
    const bench = assemble([naive, replay], { model: { config, start: initWeights(config, 1), initSeed: 1 }, recipe, drops: stream(), headline: 'replay' });
    // Without a base, retraining after drop i trains i·steps: 1 + 2 + 3 = 6 drops' worth against 3.
    expect(bench.summary[0]!.relativeCompute).toBeCloseTo(0.5, 6);
    expect(bench.cost?.qualityAtLeastEqual).toBe(false);
  });
});

describe('the plasticity probe', () => {
  beforeAll(async () => {
    await initBackend({ force: 'wasm' });
  });
  const opts = { facts: 12, steps: 150, batchSize: 8, learningRate: 1e-2, warmupSteps: 10, seed: 5 };

  it('is about 1.0 for a freshly initialised model', async () => {
    const reference = await freshReference(config, 1, opts);
    expect(reference.exactMatch).toBeGreaterThanOrEqual(0.5);
    // Other fresh initialisations learn about as much (single runs vary by ~0.15 at this size: average two).
    const ratios: number[] = [];
    for (const seed of [2, 3]) ratios.push(plasticityRatio(await probeLearning(config, initWeights(config, seed), opts), reference));
    const mean = (ratios[0]! + ratios[1]!) / 2;
    expect(mean).toBeGreaterThan(0.75);
    expect(mean).toBeLessThan(1.25);
  });

  it('uses facts of its own, seeded', () => {
    const a = probeTask(5, 8);
    expect(a).toEqual(probeTask(5, 8));
    expect(new Set(a.probes.map((p) => p.prompt)).size).toBe(8);
    expect(probeTask(6, 8).docs).not.toEqual(a.docs);
  });

  it('counts a unit that never activates as dormant', () => {
    const docs = ['The river runs past the hills at dawn.', 'A grey bird waits near the station.'];
    const weights = initWeights(config, 1);
    const fresh = LanguageModel.create(config, weights);
    const killed = cloneWeights(weights);
    killed.get('blocks.0.mlp.fc.bias')!.data[7] = -100; // GELU(-100) = 0 whatever the input
    const dead = LanguageModel.create(config, killed);
    try {
      expect(dormantUnits(fresh, docs).fraction).toBe(0);
      const d = dormantUnits(dead, docs);
      expect(d.fraction).toBeCloseTo(1 / mlpWidth(config), 12);
      expect(d.perLayer).toHaveLength(1);
    } finally {
      fresh.dispose();
      dead.dispose();
    }
  });
});

describe('a folder of drop files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continual-drops-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is read in name order with the release loop parser, invalid files stop it or are skipped', () => {
    writeFileSync(join(dir, '02-b.jsonl'), '{"text":"b one","split":"train"}\n{"text":"b two"}\n{"prompt":"B is ","completion":"2"}\n');
    writeFileSync(join(dir, '01-a.txt'), 'first paragraph\n\nsecond paragraph\n');
    writeFileSync(join(dir, '03-bad.jsonl'), '{"text": "unterminated\n');
    writeFileSync(join(dir, '.hidden'), 'ignored');
    mkdirSync(join(dir, 'sub'));
    expect(() => readDropFolder(dir)).toThrow(/03-bad\.jsonl: line 1/);
    const { drops, skipped } = readDropFolder(dir, { skipInvalid: true });
    expect(drops.map((d) => d.name)).toEqual(['01-a', '02-b']);
    expect(skipped.map((s) => s.file)).toEqual(['03-bad.jsonl']);
    expect(drops[0]!.train.length + drops[0]!.heldOut.length).toBe(2);
    expect(drops[0]!.heldOut.length).toBeGreaterThanOrEqual(1);
    expect(drops[1]!.probes).toEqual([{ prompt: 'B is ', completion: '2' }]);
  });
});
