/** The Llama family: config, kernels, checkpoint loading, generation and training steps (see each file). */
export * from './config.ts';
export * from './generate.ts';
export * from './load.ts';
export * from './model.ts';
export * from './train.ts';
export * from './weights.ts';
