/**
 * The learning-quality benchmark as a library: run a stream of drops through update strategies, get the
 * matrix R[i][j], continual-learning metrics, compute per drop and plasticity measurements.
 */
export * from './metrics.ts';
export * from './stream.ts';
export * from './strategies.ts';
export * from './plasticity.ts';
export * from './runner.ts';
export * from './benchmark.ts';
export * from './report.ts';
export * from './fair.ts';
