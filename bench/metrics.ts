/**
 * Continual-learning metrics over a result matrix R, pure and independent of tfjs. R[i][j] is the
 * metric of column (suite) j measured after drop i; row 0 is the starting model, before any drop, so a
 * stream of K drops has K + 1 rows. Each column is introduced by one drop t_j (its "diagonal" row): the
 * drop whose data the suite measures, or 0 for a suite of the starting model's own data.
 *
 * Sign convention: every metric is computed on the signed score s(x) = x for a higher-is-better metric
 * (exact match) and s(x) = -x for a lower-is-better one (loss), so that for backward transfer, forward
 * transfer and new-drop gain a negative number always means "worse". Forgetting keeps its textbook
 * form (best earlier score minus final score, Chaudhry et al. 2018): it is >= 0 when something was
 * lost, and larger is worse, for both kinds of metric.
 */

/** A result matrix with the bookkeeping the metrics need. */
export interface ResultMatrix {
  /** values[i][j]: metric of column j after drop i; row 0 is the starting model. NaN = not measured. */
  values: number[][];
  /** Per column, the drop that introduces it (1..K), or 0 for a suite of the starting model. */
  introducedAt: number[];
  /** Per column: true for exact match (higher is better), false for loss. */
  higherIsBetter: boolean[];
}

/** The signed score: higher is always better. */
export function signed(value: number, higherIsBetter: boolean): number {
  return higherIsBetter ? value : -value;
}

const mean = (xs: number[]): number => {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Number.NaN;
};

/** Number of drops K (rows minus the starting row). */
export function dropCount(m: ResultMatrix): number {
  return m.values.length - 1;
}

function check(m: ResultMatrix): void {
  const cols = m.introducedAt.length;
  if (m.higherIsBetter.length !== cols) throw new Error(`result matrix: ${m.higherIsBetter.length} higherIsBetter flags for ${cols} columns`);
  if (m.values.length < 1) throw new Error('result matrix: no rows (the starting model row 0 is required)');
  m.values.forEach((row, i) => {
    if (row.length !== cols) throw new Error(`result matrix: row ${i} has ${row.length} values for ${cols} columns`);
  });
  const k = m.values.length - 1;
  m.introducedAt.forEach((t, j) => {
    if (!Number.isInteger(t) || t < 0 || t > k) throw new Error(`result matrix: column ${j} is introduced at ${t}, outside 0..${k}`);
  });
}

const at = (m: ResultMatrix, i: number, j: number): number => signed(m.values[i]![j]!, m.higherIsBetter[j]!);

/** Mean of the final row (raw metric values, not signed): the average final metric. */
export function averageFinal(m: ResultMatrix): number {
  check(m);
  return mean(m.values.at(-1)!);
}

/**
 * Backward transfer: BWT = mean over columns j with t_j < K of s(R[K][j]) - s(R[t_j][j]). Negative:
 * later drops made earlier suites worse (forgetting); positive: later drops helped them.
 */
export function backwardTransfer(m: ResultMatrix): number {
  check(m);
  const k = dropCount(m);
  return mean(m.introducedAt.map((t, j) => (t < k ? at(m, k, j) - at(m, t, j) : Number.NaN)));
}

/**
 * Forward transfer against an untrained baseline b (the metric of a freshly initialised model):
 * FWT = mean over columns j with t_j >= 1 of s(R[t_j - 1][j]) - s(b_j): how much better than an
 * untrained model the learner does on a suite just before it trains on that suite's drop.
 */
export function forwardTransfer(m: ResultMatrix, baseline: number[]): number {
  check(m);
  if (baseline.length !== m.introducedAt.length) throw new Error(`forward transfer: ${baseline.length} baseline values for ${m.introducedAt.length} columns`);
  return mean(m.introducedAt.map((t, j) => (t >= 1 ? at(m, t - 1, j) - signed(baseline[j]!, m.higherIsBetter[j]!) : Number.NaN)));
}

/**
 * Forgetting per column: F_j = max over t_j <= i < K of s(R[i][j]), minus s(R[K][j]); NaN for columns
 * introduced by the last drop (nothing came after them). >= 0 when the suite lost ground; larger is worse.
 */
export function forgetting(m: ResultMatrix): number[] {
  check(m);
  const k = dropCount(m);
  return m.introducedAt.map((t, j) => {
    if (t >= k) return Number.NaN;
    let best = -Infinity;
    for (let i = t; i < k; i++) if (Number.isFinite(at(m, i, j))) best = Math.max(best, at(m, i, j));
    return Number.isFinite(best) ? best - at(m, k, j) : Number.NaN;
  });
}

/** The largest forgetting over the columns (NaN if none can forget). */
export function worstForgetting(m: ResultMatrix): number {
  const f = forgetting(m).filter(Number.isFinite);
  return f.length ? Math.max(...f) : Number.NaN;
}

/**
 * New-drop gain: mean over columns j with t_j >= 1 of s(R[t_j][j]) - s(R[t_j - 1][j]), what each update
 * learned about its own drop. Positive is learning; it is the in-stream measure of plasticity.
 */
export function newDropGain(m: ResultMatrix): number {
  check(m);
  return mean(m.introducedAt.map((t, j) => (t >= 1 ? at(m, t, j) - at(m, t - 1, j) : Number.NaN)));
}

/** Mean over columns j with t_j >= 1 of the diagonal value R[t_j][j] (raw): the metric right after learning. */
export function averageJustLearned(m: ResultMatrix): number {
  check(m);
  return mean(m.introducedAt.map((t, j) => (t >= 1 ? m.values[t]![j]! : Number.NaN)));
}

/**
 * The largest regression one update caused on a suite introduced before it, as the release gate measures
 * it against the champion (the previous row): loss as a fraction of the previous loss, exact match in
 * points. Reported as a magnitude (>= 0 when something regressed; 0 when nothing did).
 */
export function worstUpdateRegression(m: ResultMatrix): number {
  check(m);
  let worst = 0;
  for (let i = 1; i < m.values.length; i++) {
    m.introducedAt.forEach((t, j) => {
      if (t >= i) return;
      const prev = m.values[i - 1]![j]!;
      const now = m.values[i]![j]!;
      if (!Number.isFinite(prev) || !Number.isFinite(now)) return;
      const regression = m.higherIsBetter[j] ? prev - now : (now - prev) / Math.max(Math.abs(prev), 1e-12);
      worst = Math.max(worst, regression);
    });
  }
  return worst;
}

/**
 * The largest final regression of a suite against its value right after it was learned (R[t_j][j]),
 * loss relative, exact match in points; a magnitude like worstUpdateRegression.
 */
export function worstFinalRegression(m: ResultMatrix): number {
  check(m);
  const k = dropCount(m);
  let worst = 0;
  m.introducedAt.forEach((t, j) => {
    if (t >= k) return;
    const then = m.values[t]![j]!;
    const now = m.values[k]![j]!;
    if (!Number.isFinite(then) || !Number.isFinite(now)) return;
    worst = Math.max(worst, m.higherIsBetter[j] ? then - now : (now - then) / Math.max(Math.abs(then), 1e-12));
  });
  return worst;
}

/** The sub-matrix of the columns for which `keep` is true (e.g. only the exact-match suites). */
export function selectColumns(m: ResultMatrix, keep: (j: number) => boolean): ResultMatrix {
  const cols = m.introducedAt.map((_, j) => j).filter(keep);
  return {
    values: m.values.map((row) => cols.map((j) => row[j]!)),
    introducedAt: cols.map((j) => m.introducedAt[j]!),
    higherIsBetter: cols.map((j) => m.higherIsBetter[j]!),
  };
}

/** Every metric of one matrix. */
export interface MatrixMetrics {
  /** Mean of the final row (raw values: exact match, or loss in nats). */
  averageFinal: number;
  backwardTransfer: number;
  /** NaN when no baseline was given. */
  forwardTransfer: number;
  /** Per column; NaN for the last drop's columns. */
  forgetting: number[];
  worstForgetting: number;
  newDropGain: number;
  averageJustLearned: number;
  worstUpdateRegression: number;
  worstFinalRegression: number;
}

/** All metrics of `m` (forward transfer only with a baseline row). */
export function matrixMetrics(m: ResultMatrix, baseline?: number[]): MatrixMetrics {
  return {
    averageFinal: averageFinal(m),
    backwardTransfer: backwardTransfer(m),
    forwardTransfer: baseline ? forwardTransfer(m, baseline) : Number.NaN,
    forgetting: forgetting(m),
    worstForgetting: worstForgetting(m),
    newDropGain: newDropGain(m),
    averageJustLearned: averageJustLearned(m),
    worstUpdateRegression: worstUpdateRegression(m),
    worstFinalRegression: worstFinalRegression(m),
  };
}
