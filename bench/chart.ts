/**
 * A plain-text line chart of series over drops, for a README or a terminal: one row per level of the value
 * axis, one column per drop, one letter per series (the series' first letter, or its key), and a dashed line
 * at a reference value (the fresh model's 1 for plasticity). No dependencies, deterministic: the same numbers
 * give the same text.
 */
export interface ChartSeries {
  /** The letter drawn for this series (one character). */
  mark: string;
  name: string;
  values: number[];
}

export interface ChartOptions {
  /** Rows of the value axis (default 12). */
  height?: number;
  /** A value drawn as a dashed line across the chart, e.g. 1 for "as teachable as a fresh model". */
  reference?: number;
  /** Axis bounds; default: the data's (and the reference's) range. */
  min?: number;
  max?: number;
  /** Digits after the point on the axis labels (default 2). */
  digits?: number;
}

export function lineChart(series: ChartSeries[], opts: ChartOptions = {}): string {
  const height = opts.height ?? 12;
  if (!Number.isInteger(height) || height < 2) throw new RangeError(`a chart needs at least 2 rows, not ${height}`);
  for (const s of series) {
    if ([...s.mark].length !== 1) throw new RangeError(`series ${s.name} needs a one-character mark, not "${s.mark}"`);
    const bad = s.values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new RangeError(`series ${s.name} has a value that is not a finite number at drop ${bad + 1}`);
  }
  const width = Math.max(0, ...series.map((s) => s.values.length));
  if (width === 0) return '(no data)';
  const all = series.flatMap((s) => s.values).concat(opts.reference !== undefined ? [opts.reference] : []);
  let lo = opts.min ?? Math.min(...all);
  let hi = opts.max ?? Math.max(...all);
  if (hi === lo) [lo, hi] = [lo - 0.5, hi + 0.5];
  const row = (v: number) => Math.round(((hi - Math.min(hi, Math.max(lo, v))) / (hi - lo)) * (height - 1));
  const grid = Array.from({ length: height }, () => Array.from({ length: width }, () => ' '));
  if (opts.reference !== undefined) grid[row(opts.reference)]!.fill('-');
  for (const s of series) {
    s.values.forEach((v, x) => {
      const cell = grid[row(v)]!;
      // Two series on one cell: '*' says so (the legend names them all).
      cell[x] = cell[x] === ' ' || cell[x] === '-' ? s.mark : cell[x] === s.mark ? s.mark : '*';
    });
  }
  const digits = opts.digits ?? 2;
  const label = (r: number) => (hi - ((hi - lo) * r) / (height - 1)).toFixed(digits);
  const pad = Math.max(...Array.from({ length: height }, (_, r) => label(r).length));
  const lines = grid.map((cells, r) => `${label(r).padStart(pad)} |${cells.join('')}`);
  lines.push(`${' '.repeat(pad)} +${'-'.repeat(width)}`);
  const ticks = Array.from({ length: width }, (_, x) => ((x + 1) % 5 === 0 ? '|' : ' ')).join('');
  lines.push(`${' '.repeat(pad)}  ${ticks}  drop (a | every 5)`);
  lines.push(series.map((s) => `${s.mark} ${s.name}`).join('   ') + (opts.reference !== undefined ? `   - ${opts.reference}` : '') + '   * two at once');
  return lines.join('\n');
}
