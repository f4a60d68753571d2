/**
 * The contracts of the loop, in one bundle-safe place imported by workflows, activities, workers and the
 * client: ids and task queues, messages, error types, gate shapes and search attributes.
 */
export * from './ids.ts';
export * from './messages.ts';
export * from './errors.ts';
export * from './gate.ts';
export * from './search-attributes.ts';
