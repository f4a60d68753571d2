/** Every table of the registry, for drizzle-kit and for `drizzle({ schema })`. */
export * from './lines.ts';
export * from './drops.ts';
export * from './versions.ts';
export * from './training.ts';
export * from './gates.ts';
export * from './channels.ts';
export * from './applications.ts';
export * from './suites.ts';
export * from './audit.ts';
export { DIGEST_PATTERN, NAME_PATTERN } from './columns.ts';
export * from './plasticity.ts';
export * from './trials.ts';
export * from './rl.ts';
