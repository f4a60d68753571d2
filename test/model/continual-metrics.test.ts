import { describe, expect, it } from 'vitest';
import {
  type ResultMatrix,
  averageFinal,
  backwardTransfer,
  forgetting,
  forwardTransfer,
  matrixMetrics,
  newDropGain,
  selectColumns,
  worstFinalRegression,
  worstForgetting,
  worstUpdateRegression,
} from '../../bench/metrics.ts';
import { buildSuites, type StreamDrop } from '../../bench/stream.ts';

// Three drops, one exact-match suite each; row 0 is the starting model.
const em: ResultMatrix = {
  values: [
    [0.0, 0.0, 0.0],
    [0.8, 0.1, 0.0],
    [0.6, 0.9, 0.2],
    [0.5, 0.7, 1.0],
  ],
  introducedAt: [1, 2, 3],
  higherIsBetter: [true, true, true],
};

// Two drops, one loss suite each (lower is better).
const loss: ResultMatrix = {
  values: [
    [5.0, 5.0],
    [1.0, 4.0],
    [1.5, 0.8],
  ],
  introducedAt: [1, 2],
  higherIsBetter: [false, false],
};

describe('continual-learning metrics on hand-computed matrices', () => {
  it('exact match: average final, BWT, FWT, forgetting, new-drop gain', () => {
    expect(averageFinal(em)).toBeCloseTo((0.5 + 0.7 + 1.0) / 3, 12);
    // BWT = mean(R3[0] - R1[0], R3[1] - R2[1]) = mean(-0.3, -0.2)
    expect(backwardTransfer(em)).toBeCloseTo(-0.25, 12);
    // FWT = mean(R0[0] - b, R1[1] - b, R2[2] - b) with b = 0.05
    expect(forwardTransfer(em, [0.05, 0.05, 0.05])).toBeCloseTo(0.05, 12);
    // Forgetting: best of rows t_j..K-1 minus final; the last drop's suite has none.
    const f = forgetting(em);
    expect(f[0]).toBeCloseTo(0.3, 12);
    expect(f[1]).toBeCloseTo(0.2, 12);
    expect(f[2]).toBeNaN();
    expect(worstForgetting(em)).toBeCloseTo(0.3, 12);
    // Gain = mean(R1[0] - R0[0], R2[1] - R1[1], R3[2] - R2[2])
    expect(newDropGain(em)).toBeCloseTo(0.8, 12);
    // Gate-style: update 2 cost suite 0 0.2 points; update 3 cost suite 1 0.2 and suite 0 0.1.
    expect(worstUpdateRegression(em)).toBeCloseTo(0.2, 12);
    expect(worstFinalRegression(em)).toBeCloseTo(0.3, 12);
  });

  it('loss: a rise in loss is negative transfer and positive forgetting', () => {
    expect(averageFinal(loss)).toBeCloseTo((1.5 + 0.8) / 2, 12);
    // s = -loss: BWT = (-1.5) - (-1.0)
    expect(backwardTransfer(loss)).toBeCloseTo(-0.5, 12);
    // FWT against an untrained loss of 5.5: mean(-5.0 + 5.5, -4.0 + 5.5)
    expect(forwardTransfer(loss, [5.5, 5.5])).toBeCloseTo(1.0, 12);
    expect(forgetting(loss)[0]).toBeCloseTo(0.5, 12);
    // Gain: mean(5.0 - 1.0, 4.0 - 0.8)
    expect(newDropGain(loss)).toBeCloseTo(3.6, 12);
    // Loss regressions are relative, as the release gate measures them: (1.5 - 1.0) / 1.0
    expect(worstUpdateRegression(loss)).toBeCloseTo(0.5, 12);
    expect(worstFinalRegression(loss)).toBeCloseTo(0.5, 12);
  });

  it('counts a suite of the starting model (introduced at 0) in BWT and forgetting, not in FWT or gain', () => {
    const m: ResultMatrix = {
      values: [
        [2.0, 0.0],
        [2.4, 0.9],
        [2.2, 0.8],
      ],
      introducedAt: [0, 1],
      higherIsBetter: [false, true],
    };
    const lossOnly = selectColumns(m, (j) => !m.higherIsBetter[j]);
    expect(lossOnly.values).toEqual([[2.0], [2.4], [2.2]]);
    // -2.2 - (-2.0)
    expect(backwardTransfer(lossOnly)).toBeCloseTo(-0.2, 12);
    // best of rows 0..1 is 2.0 (score -2.0); final score -2.2
    expect(forgetting(lossOnly)[0]).toBeCloseTo(0.2, 12);
    expect(newDropGain(lossOnly)).toBeNaN();
    const emOnly = selectColumns(m, (j) => m.higherIsBetter[j]!);
    expect(matrixMetrics(emOnly, [0]).forwardTransfer).toBeCloseTo(0, 12);
    expect(matrixMetrics(emOnly, [0]).backwardTransfer).toBeCloseTo(-0.1, 12);
  });

  it('rejects a malformed matrix', () => {
    expect(() => backwardTransfer({ values: [[1, 2]], introducedAt: [0], higherIsBetter: [true] })).toThrow(/row 0 has 2 values/);
    expect(() => backwardTransfer({ values: [[1]], introducedAt: [2], higherIsBetter: [true] })).toThrow(/introduced at 2/);
  });
});

describe('suites of a stream', () => {
  const drop = (name: string, probes: [string, string][], train = ['t']): StreamDrop => ({
    name,
    train,
    heldOut: [`${name} held out`],
    probes: probes.map(([prompt, completion]) => ({ prompt, completion })),
  });

  it('drops superseded probes from earlier suites and reports the old answers', () => {
    const { suites, supersessions } = buildSuites(
      [
        drop('a', [
          ['The lamp holds up to ', '40 kg.'],
          ['The lamp costs ', '12 credits.'],
        ]),
        drop('b', [['The fan costs ', '30 credits.']]),
        drop('rules', [['The lamp holds up to ', '60 kg.']]),
      ],
      { name: 'general', train: ['x'], heldOut: ['y'], probes: [] },
    );
    expect(suites.map((s) => [s.name, s.drop, s.metric])).toEqual([
      ['general', 0, 'loss'],
      ['a', 1, 'loss'],
      ['a-probes', 1, 'exactMatch'],
      ['b', 2, 'loss'],
      ['b-probes', 2, 'exactMatch'],
      ['rules', 3, 'loss'],
      ['rules-probes', 3, 'exactMatch'],
    ]);
    const a = suites.find((s) => s.name === 'a-probes')!;
    expect(a.probes).toEqual([{ prompt: 'The lamp costs ', completion: '12 credits.' }]);
    expect(a.superseded).toBe(1);
    expect(supersessions).toEqual([{ drop: 3, oldAnswers: [{ prompt: 'The lamp holds up to ', completion: '40 kg.' }] }]);
  });
});
