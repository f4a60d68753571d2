/**
 * Evaluate: measure one version on a list of suites (held-out loss and perplexity for text suites, greedy
 * exact match for probe suites) and record every result. A stored result is reused only when it was
 * measured on the same weights, exactly the same records (same data digest, so superseded probes never leave a
 * stale number), the same backend and the same code revision; anything else is measured again.
 */
import { Context } from '@temporalio/activity';
import { initBackend } from '../model/backend.ts';
import { evaluateLoss, exactMatch } from '../model/evaluate.ts';
import { initWeights, LanguageModel } from '../model/transformer.ts';
import { loadModel } from '../model/weights.ts';
import { type PlasticityRecord, type ProbeOutcome, DEFAULT_PROBE_BUDGET, measurePlasticity, probeLearning } from '../model/plasticity.ts';
import type { Metrics } from '../schemas/contracts/gate.ts';
import type { ActivityDeps } from './deps.ts';
import { resolveSuites, type SuiteData } from '../domain/suites.ts';
import type { ModelConfig } from '../schemas/io.ts';
import type { SuiteRef } from './types.ts';

export function evaluationActivities(deps: ActivityDeps) {
  /** Fresh-model probe outcomes by (config, seed, budget, backend): the reference is the same for every version of a line. */
  const references = new Map<string, ProbeOutcome>();
  const measure = measureSuite;

  return {
    /**
     * Evaluates each of `line@versions` on `suites` (candidate and champion in one call, on the same data, code
     * and backend), records every result, returns version -> suite -> metrics. Idempotent.
     */
    async evaluateVersions(input: { line: string; versions: number[]; suites: SuiteRef[]; fresh?: boolean }): Promise<Record<number, Record<string, Metrics>>> {
      const data = await resolveSuites(input.suites, deps.drops);
      const out: Record<number, Record<string, Metrics>> = {};
      for (const version of input.versions) out[version] = await evaluateOne({ ...input, version }, data);
      return out;
    },

    /**
     * Negative flips of `line@candidate` against `line@against` on each probe suite: probes the old version
     * answered exactly and the new one does not, of all the suite's probes (the inheritance gate's number).
     * Measured fresh each time (nothing is recorded): two greedy passes over the probes. Deterministic.
     */
    async countFlips(input: { line: string; candidate: number; against: number; suites: SuiteRef[] }): Promise<Record<string, { negativeFlips: number; probes: number }>> {
      const probeSuites = input.suites.filter((s) => s.kind === 'probe');
      const data = await resolveSuites(probeSuites, deps.drops);
      await initBackend();
      const hits = async (version: number) => {
        const v = await deps.registry.getVersion(input.line, version);
        const { config, weights } = loadModel(await deps.store.get(v.weightsDigest));
        const model = LanguageModel.create(config, weights);
        try {
          return Object.fromEntries(
            probeSuites.map((s) => {
              const d = data.get(s.name)!;
              return [s.name, d.kind === 'probe' ? exactMatch(model, d.probes).hits : []];
            }),
          );
        } finally {
          model.dispose();
        }
      };
      const [now, before] = [await hits(input.candidate), await hits(input.against)];
      return Object.fromEntries(
        probeSuites.map((s) => [s.name, { negativeFlips: before[s.name]!.filter((h, i) => h && !now[s.name]![i]).length, probes: before[s.name]!.length }]),
      );
    },

    /**
     * Measures an untrained model of `modelConfig` (initWeights(config, seed): where a from-scratch candidate
     * starts) on `suites`: what a line's first version must beat. Records nothing (there is no version); the
     * numbers are kept in the gate decision. Deterministic, so idempotent.
     */
    async evaluateUntrained(input: { modelConfig: ModelConfig; seed: number; suites: SuiteRef[] }): Promise<Record<string, Metrics>> {
      const data = await resolveSuites(input.suites, deps.drops);
      await initBackend();
      const model = LanguageModel.create(input.modelConfig, initWeights(input.modelConfig, input.seed));
      const out: Record<string, Metrics> = {};
      try {
        for (const suite of input.suites) out[suite.name] = await measure(model, data.get(suite.name)!);
      } finally {
        model.dispose();
      }
      return out;
    },

    /**
     * Measures `line@version`'s plasticity (model/plasticity.ts: a copy trained on a seeded probe task against a
     * fresh model of the same shape, initialised with `seed`, given the same budget) and records it once. A
     * version already measured returns its stored record, so a retry or a replay does not measure twice.
     */
    async measurePlasticity(input: { line: string; version: number; seed: number }): Promise<PlasticityRecord> {
      const [stored] = await deps.registry.getPlasticity(input.line, input.version);
      if (stored) return stored.record as unknown as PlasticityRecord;
      const backend = await initBackend();
      const version = await deps.registry.getVersion(input.line, input.version);
      const { config, weights } = loadModel(await deps.store.get(version.weightsDigest));
      const refKey = JSON.stringify([config, input.seed, DEFAULT_PROBE_BUDGET, backend]);
      // The probes train between heartbeats; trainModel yields to the event loop every step, so a timer can beat.
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat({ phase: 'plasticity' }), 2000);
      let record: PlasticityRecord;
      try {
        let reference = references.get(refKey);
        if (!reference) {
          reference = await probeLearning(config, initWeights(config, input.seed), DEFAULT_PROBE_BUDGET);
          references.set(refKey, reference);
        }
        record = await measurePlasticity(config, weights, { initSeed: input.seed, reference });
      } finally {
        clearInterval(beat);
      }
      const saved = await deps.registry.recordPlasticity({ line: input.line, version: input.version, record: record as never, backend });
      return saved.record as unknown as PlasticityRecord;
    },
  };

  async function evaluateOne(
    input: { line: string; version: number; suites: SuiteRef[]; fresh?: boolean },
    data: Map<string, SuiteData>,
  ): Promise<Record<string, Metrics>> {
    const ctx = Context.current();
    const [stored, backend, version] = await Promise.all([
      input.fresh ? [] : deps.registry.getEvaluations(input.line, input.version),
      initBackend(),
      deps.registry.getVersion(input.line, input.version),
    ]);
    const out: Record<string, Metrics> = {};
    const todo: SuiteRef[] = [];
    for (const suite of input.suites) {
      const prior = stored.find(
        (e) =>
          e.suite === suite.name &&
          e.dataDigest === data.get(suite.name)!.dataDigest &&
          e.weightsDigest === version.weightsDigest &&
          e.backend === backend &&
          e.codeRevision === deps.codeRevision,
      );
      if (prior) out[suite.name] = prior.metrics as Metrics;
      else todo.push(suite);
    }
    if (todo.length === 0) return out;

    const { config, weights } = loadModel(await deps.store.get(version.weightsDigest));
    const model = LanguageModel.create(config, weights);
    try {
      for (const suite of todo) {
        const d = data.get(suite.name)!;
        const started = performance.now();
        const metrics = await measure(model, d);
        metrics.evalMs = Math.round(performance.now() - started);
        if (suite.evidence) metrics.evidence = 1;
        await deps.registry.recordEvaluation({
          line: input.line,
          version: input.version,
          suite: suite.name,
          suiteLine: suite.line,
          metrics,
          dataDigest: d.dataDigest,
          backend,
          codeRevision: deps.codeRevision,
        });
        out[suite.name] = metrics;
        ctx.heartbeat({ suite: suite.name });
      }
    } finally {
      model.dispose();
    }
    return out;
  }
}

/** One suite's metrics for a loaded model: loss and perplexity for text, exact match for probes (retired when none are left). */
export async function measureSuite(model: LanguageModel, d: SuiteData): Promise<Metrics> {
  if (d.kind === 'probe' && d.probes.length === 0) return { retired: 1, total: 0, superseded: d.superseded };
  if (d.kind === 'text') {
    const r = await evaluateLoss(model, d.texts);
    return { loss: r.meanLoss, perplexity: r.perplexity, tokens: r.tokens, records: d.texts.length };
  }
  const r = await exactMatch(model, d.probes);
  return { exactMatch: r.accuracy, correct: r.correct, total: r.total, superseded: d.superseded };
}

