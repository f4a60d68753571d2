/**
 * Presentation of benchmark results: the comparison table and the matrix as text, and a self-contained
 * HTML page with the matrix of every strategy as a heatmap (the release report's heatmapSvg).
 */
import { type Heatmap, heatmapSvg } from '../report/report.ts';
import type { BenchmarkResult, StrategySummary } from './benchmark.ts';
import type { StreamResult } from './runner.ts';

const num = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const signedNum = (x: number, digits = 3) => (Number.isFinite(x) ? (x > 0 ? '+' : '') + x.toFixed(digits) : '-');

/** Human-readable FLOPs (e.g. "1.23 TFLOP"). */
export function flops(x: number): string {
  const units: [number, string][] = [
    [1e15, 'PFLOP'],
    [1e12, 'TFLOP'],
    [1e9, 'GFLOP'],
  ];
  for (const [scale, unit] of units) if (x >= scale) return `${(x / scale).toFixed(2)} ${unit}`;
  return `${x.toExponential(2)} FLOP`;
}

const duration = (ms: number) => (ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);

/** Lays out rows of cells as aligned columns (first column left, the rest right). */
export function columns(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A table as header and rows of cells. */
export interface Cells {
  header: string[];
  rows: string[][];
}

/** The comparison table's cells: one row per strategy. */
export function summaryCells(summary: StrategySummary[]): Cells {
  const header = [
    'strategy',
    'final EM',
    'final loss',
    'BWT EM',
    'BWT loss',
    'worst forg. EM',
    'worst forg. loss',
    'new-drop gain EM',
    'gain loss',
    'compute',
    'vs retrain',
    'train time',
    'plasticity',
    'old answer',
  ];
  const rows = summary.map((s) => [
    s.strategy,
    num(s.finalExactMatch),
    num(s.finalLoss),
    signedNum(s.bwtExactMatch),
    signedNum(s.bwtLoss),
    num(s.worstForgettingExactMatch),
    num(s.worstForgettingLoss),
    signedNum(s.newDropGainExactMatch),
    signedNum(s.newDropGainLoss),
    flops(s.flops),
    `${(100 * s.relativeCompute).toFixed(1)}%`,
    duration(s.wallMs),
    num(s.plasticityFinal, 2),
    num(s.oldAnswerFinal, 2),
  ]);
  return { header, rows };
}

/** The comparison table: one row per strategy. */
export function summaryTable(summary: StrategySummary[]): string {
  const { header, rows } = summaryCells(summary);
  return columns(header, rows);
}

/** Thresholds a recipe must meet on a stream of fact drops (the release loop's brief for the small model). */
export interface RecipeTargets {
  /** Least exact match on every new drop's probes right after its update. */
  newDropExactMatch: number;
  /** Most an update may cost an earlier suite: exact-match points, and loss as a fraction. */
  exactMatchRegression: number;
  lossRegression: number;
}

export const RECIPE_TARGETS: RecipeTargets = { newDropExactMatch: 0.8, exactMatchRegression: 0.1, lossRegression: 0.1 };

/** Smallest exact match of any drop's own probes right after its update (its diagonal entry). */
export function minJustLearned(r: StreamResult): number {
  const xs = r.suites.flatMap((s, j) => (s.metric === 'exactMatch' && s.drop >= 1 ? [r.matrix[s.drop]![j]!] : []));
  return xs.length ? Math.min(...xs) : Number.NaN;
}

/** One row per recipe: what each update learned, what it cost earlier suites, against the targets. */
export function recipeCells(results: StreamResult[], targets: RecipeTargets = RECIPE_TARGETS): Cells {
  const header = [
    'recipe',
    'steps x batch',
    'lr',
    'warmup',
    'replay',
    'l2Pull',
    'new-drop EM mean',
    'min',
    'worst update regr. EM',
    'worst update regr. loss',
    'final regr. loss',
    'final EM',
    'BWT EM',
    'train time',
    `meets (>=${targets.newDropExactMatch}, <=${targets.exactMatchRegression}, <=${(100 * targets.lossRegression).toFixed(0)}%)`,
  ];
  const rows = results.map((r) => {
    const em = r.metrics.exactMatch;
    const loss = r.metrics.loss;
    const min = minJustLearned(r);
    const ok =
      min >= targets.newDropExactMatch &&
      em.worstUpdateRegression <= targets.exactMatchRegression + 1e-9 &&
      loss.worstUpdateRegression <= targets.lossRegression + 1e-9;
    return [
      r.strategy.name,
      `${r.recipe.steps} x ${r.recipe.batchSize}`,
      String(r.recipe.learningRate),
      String(r.recipe.warmupSteps),
      r.strategy.replayRatio > 0 ? `${r.strategy.replayRatio} ${r.strategy.replayMix ?? 'balanced'}` : '0',
      String(r.strategy.l2Pull),
      num(em.averageJustLearned),
      num(min),
      num(em.worstUpdateRegression),
      `${(100 * loss.worstUpdateRegression).toFixed(1)}%`,
      `${(100 * loss.worstFinalRegression).toFixed(1)}%`,
      num(em.averageFinal),
      signedNum(em.backwardTransfer),
      duration(r.total.wallMs),
      ok ? 'yes' : 'no',
    ];
  });
  return { header, rows };
}

/** The recipe table as text. */
export function recipeTable(results: StreamResult[], targets?: RecipeTargets): string {
  const { header, rows } = recipeCells(results, targets);
  return columns(header, rows);
}

/** The matrix of one strategy: rows are versions (after drop i), columns suites; EM for probes, loss for text. */
export function matrixTable(r: StreamResult): string {
  const header = ['after', ...r.suites.map((s) => (s.metric === 'exactMatch' ? `${s.name} EM` : `${s.name} loss`))];
  const rows = r.matrix.map((row, i) => [i === 0 ? 'start' : `${i} ${r.dropNames[i - 1]}`, ...row.map((v) => num(v))]);
  rows.push(['untrained', ...r.baseline.map((v) => num(v))]);
  return columns(header, rows);
}

/** Plasticity series of one strategy: per version the probe ratio, dormant units and weight-norm growth. */
export function plasticityCells(r: StreamResult): Cells {
  const header = ['after', 'probe EM', 'ratio', 'probe loss', 'dormant', 'norm growth'];
  const rows = r.plasticity.map((p, i) => [
    i === 0 ? 'start' : `${i}`,
    num(p.probe.exactMatch, 2),
    num(p.ratio, 2),
    num(p.probe.loss, 3),
    num(p.dormant.fraction, 3),
    num(p.weightNormGrowth, 3),
  ]);
  return { header, rows };
}

/** Plasticity series as text. */
export function plasticityTable(r: StreamResult): string {
  const { header, rows } = plasticityCells(r);
  return columns(header, rows);
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The heatmap of one strategy's matrix (untrained baseline as the last row). */
export function matrixHeatmap(r: StreamResult): Heatmap {
  return {
    title: `${r.strategy.name}: metric per suite after each drop`,
    rows: [...r.matrix.map((_, i) => (i === 0 ? 'start' : `after ${i}: ${r.dropNames[i - 1]}`)), 'untrained'],
    cols: r.suites.map((s) => `${s.name}${s.metric === 'loss' ? ' (loss)' : ' (EM)'}`),
    values: [...r.matrix, r.baseline],
    higherIsBetter: r.suites.map((s) => s.metric === 'exactMatch'),
  };
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}h1{font-size:22px}h2{margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
svg text{font:11px system-ui,sans-serif}svg .val{font-size:10px}pre{background:#f7f7f7;padding:8px;overflow:auto}small{color:#666}`;

function htmlTable(t: Cells): string {
  return `<table><tr>${t.header.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${t.rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</table>`;
}

/** A self-contained page: the table, the cost verdict, a heatmap and plasticity series per strategy. */
export function htmlReport(bench: BenchmarkResult, meta: { title: string; notes?: string[]; extra?: { title: string; result: StreamResult }[] }): string {
  const section = (title: string, r: StreamResult) =>
    [
      `<h2>${esc(title)}</h2>`,
      heatmapSvg(matrixHeatmap(r)),
      r.plasticity.length ? `<h3>Plasticity</h3>${htmlTable(plasticityCells(r))}` : '',
      r.oldAnswers.length
        ? `<p>Old answers still given after a change: ${r.oldAnswers.map((o) => `drop ${o.drop}: ${num(o.afterUpdate, 2)} right after, ${num(o.final, 2)} at the end (${o.prompts} prompts)`).join('; ')}</p>`
        : '',
    ].join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(meta.title)}</title><style>${CSS}</style></head><body>
<h1>${esc(meta.title)}</h1>
${(meta.notes ?? []).map((n) => `<p><small>${esc(n)}</small></p>`).join('\n')}
<h2>Strategies</h2>
${htmlTable(summaryCells(bench.summary))}
${bench.cost ? `<p><strong>${esc(bench.cost.sentence)}</strong></p>` : ''}
<p><small>Rows of each heatmap: the version after each drop (start: the starting model; untrained: a fresh model, the forward-transfer baseline). Columns: suites, loss for held-out text (lower is better), exact match for probes (higher is better); each column is coloured from its worst (red) to its best (green) value.</small></p>
${bench.results.map((r) => section(r.strategy.name, r)).join('\n')}
${(meta.extra ?? []).map((e) => section(e.title, e.result)).join('\n')}
</body></html>
`;
}
