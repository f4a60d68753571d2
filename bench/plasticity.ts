/** The plasticity measures live in model/plasticity.ts (the cycle measures every version too); the benchmark re-exports them. */
export * from '../model/plasticity.ts';
