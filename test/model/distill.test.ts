import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { type ModelConfig, preset } from '../../model/config.ts';
import { BatchSampler } from '../../model/data.ts';
import { InvalidRecipeError, trainModel } from '../../model/train.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import type { Weights } from '../../model/weights.ts';
import { CORPUS, FACT_DOCS, recipe } from './fixtures.ts';

const student = preset('tiny');
const sources = [{ name: 'drop', weight: 1, docs: CORPUS }];

/** Mean KL(teacher ‖ student) at T = 1 over the non-PAD positions of fixed batches of the corpus. */
function meanKL(teacherCfg: ModelConfig, teacherW: Weights, studentW: Weights): number {
  const t = LanguageModel.create(teacherCfg, teacherW);
  const s = LanguageModel.create(student, studentW);
  const sampler = new BatchSampler(sources, student.context, 999);
  try {
    let sum = 0;
    for (let step = 1; step <= 4; step++) {
      const { ids, targets } = sampler.batch(step, 8);
      const soft = tf.tidy(() => t.teacherProbs(ids, 8, 1));
      sum += tf.tidy(() => s.distillLoss(ids, targets, 8, soft, 1, 1).dataSync()[0]!);
      soft.dispose();
    }
    return sum / 4;
  } finally {
    t.dispose();
    s.dispose();
  }
}

/**
 * A teacher that learned other text than the student sees (the facts), so that plain training on the
 * corpus does not by itself move the student toward it: only distillation does.
 */
async function trainTeacher(config: ModelConfig): Promise<Weights> {
  const facts = [{ name: 'facts', weight: 1, docs: FACT_DOCS }];
  const r = await trainModel({ config, init: initWeights(config, 3), sources: facts, recipe: recipe({ steps: 120, batchSize: 8, learningRate: 5e-3 }) });
  return r.weights;
}

describe('distillation from a teacher', () => {
  beforeAll(async () => {
    await initBackend({ force: 'wasm' });
  });

  it.each([
    ['the same width', student],
    ['another width and depth', { ...student, dModel: 48, nLayers: 2, nHeads: 3, context: 48 }],
  ])('moves a student toward a teacher of %s (KL falls, further than plain training), with no tensors left over', async (_label, teacherCfg) => {
    const teacher = await trainTeacher(teacherCfg);
    const init = initWeights(student, 5);
    const before = meanKL(teacherCfg, teacher, init);
    const distilRecipe = recipe({ steps: 60, batchSize: 8, learningRate: 5e-3, distillTemperature: 2, distillWeight: 1 });
    const tensors = tf.memory().numTensors;
    const distilled = await trainModel({ config: student, init, sources, recipe: distilRecipe, teacher: { config: teacherCfg, weights: teacher } });
    expect(tf.memory().numTensors).toBe(tensors);
    const plain = await trainModel({ config: student, init, sources, recipe: recipe({ steps: 60, batchSize: 8, learningRate: 5e-3 }) });
    const after = meanKL(teacherCfg, teacher, distilled.weights);
    const afterPlain = meanKL(teacherCfg, teacher, plain.weights);
    expect(after).toBeLessThan(before * 0.5);
    expect(after).toBeLessThan(afterPlain);
    expect(distilled.lossCurve.at(-1)!).toBeLessThan(distilled.lossCurve[0]!);
  });

  it('mixes cross-entropy and KL by distillWeight: weight 0 trains exactly as without a teacher', async () => {
    const teacher = initWeights(student, 4);
    const init = initWeights(student, 5);
    const r = recipe({ steps: 5 });
    const plain = await trainModel({ config: student, init, sources, recipe: r });
    const zero = await trainModel({ config: student, init, sources, recipe: { ...r, distillWeight: 0 }, teacher: { config: student, weights: teacher } });
    expect(zero.lossCurve).toEqual(plain.lossCurve);
  });

  it('trains a source kept out of distillation on cross-entropy alone: all sources kept out train exactly as without a teacher', async () => {
    const teacher = initWeights(student, 4);
    const init = initWeights(student, 5);
    const r = recipe({ steps: 5 });
    const plain = await trainModel({ config: student, init, sources, recipe: r });
    const kept = [{ ...sources[0]!, distill: false }];
    const out = await trainModel({ config: student, init, sources: kept, recipe: { ...r, distillWeight: 0.5 }, teacher: { config: student, weights: teacher } });
    expect(out.lossCurve).toEqual(plain.lossCurve);
    // With a distilled source beside it, the teacher does change the result (the mask is per row, not global).
    const mixed = [kept[0]!, { name: 'facts', weight: 1, docs: FACT_DOCS }];
    const tensors = tf.memory().numTensors;
    const a = await trainModel({ config: student, init, sources: mixed, recipe: { ...r, distillWeight: 0.5 }, teacher: { config: student, weights: teacher } });
    expect(tf.memory().numTensors).toBe(tensors);
    const noTeacher = await trainModel({ config: student, init, sources: mixed, recipe: r });
    expect(a.lossCurve).not.toEqual(noTeacher.lossCurve);
  });

  it('rejects distillWeight without a teacher, a teacher of another vocabulary, and a shorter teacher context', async () => {
    const init = initWeights(student, 5);
    await expect(trainModel({ config: student, init, sources, recipe: recipe({ distillWeight: 0.5 }) })).rejects.toThrow(InvalidRecipeError);
    const wide = { ...student, vocabSize: student.vocabSize + 8 };
    await expect(
      trainModel({ config: student, init, sources, recipe: recipe(), teacher: { config: wide, weights: initWeights(wide, 1) } }),
    ).rejects.toThrow(/vocabSize/);
    const short = { ...student, context: 16 };
    await expect(
      trainModel({ config: student, init, sources, recipe: recipe(), teacher: { config: short, weights: initWeights(short, 1) } }),
    ).rejects.toThrow(/context 16/);
    await expect(trainModel({ config: student, init, sources, recipe: recipe({ distillTemperature: 0 }) })).rejects.toThrow(/distillTemperature/);
  });
});
