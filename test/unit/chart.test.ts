import { describe, expect, it } from 'vitest';
import { lineChart } from '../../bench/chart.ts';

describe('lineChart', () => {
  it('puts each value on its row, the reference as a dashed line, and marks shared cells', () => {
    const text = lineChart(
      [
        { mark: 'n', name: 'naive', values: [2, 1, 0] },
        { mark: 'd', name: 'default', values: [2, 2, 2] },
      ],
      { height: 3, reference: 1, digits: 1 },
    );
    expect(text.split('\n')).toEqual([
      '2.0 |*dd',
      '1.0 |-n-',
      '0.0 |  n',
      '    +---',
      '          drop (a | every 5)',
      'n naive   d default   - 1   * two at once',
    ]);
  });

  it('refuses a value that is not a finite number, naming the series and the drop', () => {
    expect(() => lineChart([{ mark: 'x', name: 'naive', values: [1, Number.NaN] }])).toThrow('series naive has a value that is not a finite number at drop 2');
  });

  it('draws a constant series on a range around it', () => {
    expect(lineChart([{ mark: 'c', name: 'flat', values: [3, 3] }], { height: 2 })).toContain('|cc');
  });
});
