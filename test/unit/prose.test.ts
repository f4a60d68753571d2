import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { preset } from '../../model/config.ts';
import { evaluateLoss } from '../../model/evaluate.ts';
import { LanguageModel, initWeights } from '../../model/transformer.ts';
import { compressorBitsPerByte, modelBitsPerByte, splitProse } from '../../bench/prose.ts';

const file = join(import.meta.dirname, '..', '..', 'bench', 'corpus', 'pride-and-prejudice.txt');
const bytes = readFileSync(file);
const split = splitProse(bytes, file);

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
});

describe('the bench:prose corpus and its accounting', () => {
  it('is the committed novel without the Project Gutenberg header and licence, split as ingest splits a text drop', () => {
    expect(bytes.length).toBe(727_866);
    expect(bytes.toString('utf8')).not.toMatch(/gutenberg/i);
    expect(bytes.toString('utf8')).toContain(
      'It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want of a wife.',
    );
    expect([split.train.length, split.heldOut.length]).toEqual([1941, 340]);
    expect(split.heldOutFile.length).toBe(119_011);
  });

  it("counts the held-out tokens exactly as the loop's evaluation does: each paragraph's bytes and its EOS, not BOS", () => {
    const config = preset('tiny');
    const model = LanguageModel.create(config, initWeights(config, 1));
    try {
      const report = evaluateLoss(model, split.heldOut);
      expect(report.tokens).toBe(split.predictedTokens);
      // An untrained model is near uniform over the 259 tokens: about log2(259) = 8.02 bits a token, and a
      // little less a byte of the held-out file (an EOS is one token and stands for two bytes, "\n\n").
      const perByte = modelBitsPerByte(report.meanLoss, split);
      expect(report.meanLoss / Math.LN2).toBeGreaterThan(7.5);
      expect(perByte).toBeCloseTo((report.meanLoss / Math.LN2) * (split.predictedTokens / split.heldOutFile.length), 10);
      expect(perByte).toBeLessThan(report.meanLoss / Math.LN2);
    } finally {
      model.dispose();
    }
  });

  it('gives xz -9 and gzip -9 of the held-out bytes, and their cost given the train part', () => {
    const xz = compressorBitsPerByte('xz', split);
    const gzip = compressorBitsPerByte('gzip', split);
    expect(xz.alone).toBeCloseTo(2.642, 2);
    expect(gzip.alone).toBeCloseTo(2.938, 2);
    // Seeing the rest of the book first makes the held-out part cheaper to both.
    expect(xz.givenTrain).toBeLessThan(xz.alone);
    expect(gzip.givenTrain).toBeLessThan(gzip.alone);
  });
});
