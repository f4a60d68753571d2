/**
 * The champion's stored results are reused only when they were measured on the same weights, data, backend
 * and code revision; otherwise the activity measures again. Real registry, store, model and tfjs backend; the
 * activity runs in the SDK's activity test environment (it heartbeats through its context).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../domain/drops.ts';
import { evaluationActivities } from '../../activities/evaluate.ts';
import { ingestActivities } from '../../activities/ingest.ts';
import type { SuiteRef } from '../../activities/types.ts';
import { PRESETS } from '../../model/config.ts';
import { initWeights } from '../../model/transformer.ts';
import { saveModel } from '../../model/weights.ts';
import { activityDeps, FIXTURE_LINE, openTestRegistry, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
let admin: postgres.Sql;
let suites: SuiteRef[];
const line = 'cached';
const config = PRESETS.tiny;

const deps = (codeRevision: string) => activityDeps(t, { codeRevision });

beforeAll(async () => {
  t = await openTestRegistry('evaluation_cache');
  admin = postgres(t.database.adminUrl, { max: 1, onnotice: () => {} });
  await t.registry.ensureLine({ name: line, kind: 'foundation', ...FIXTURE_LINE, modelConfig: config, actor: 'test' });
  const dir = join(t.dir, 'drops');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'facts.jsonl');
  const records = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `fact ${i}: the mill opens at ${i % 12} o'clock.` }));
  writeFileSync(file, records.join('\n') + '\n');
  const bytes = Buffer.from(records.join('\n') + '\n');
  const ingested = await ingestActivities(deps('rev-a')).ingestDrop({ line, request: { path: file, digest: sha256Hex(bytes), source: 'facts' }, key: 'k1' });
  if (ingested.status !== 'accepted') throw new Error(`drop not accepted: ${ingested.status}`);
  suites = ingested.suites;
  const weightsDigest = await t.store.put(saveModel(config, initWeights(config, 3)));
  await t.registry.startTrainingRun({ line, key: 'run-1', parentVersion: null, recipe: FIXTURE_LINE.recipe, seed: 3, drops: [ingested.digest] });
  await t.registry.finishTrainingRun('run-1', { status: 'completed', artifactDigest: weightsDigest });
  await t.registry.createVersion({
    line,
    trainingRunKey: 'run-1',
    parentVersion: null,
    weightsDigest,
    recipe: FIXTURE_LINE.recipe,
    drops: [ingested.digest],
    codeRevision: 'rev-a',
    seed: 3,
    backend: 'cpu',
    compute: { tokens: 0, flops: 0, wallMs: 0 },
  });
}, 120_000);
afterAll(async () => {
  await admin?.end({ timeout: 5 });
  await t?.close();
});

type Results = Awaited<ReturnType<ReturnType<typeof evaluationActivities>['evaluateVersions']>>;
const evaluate = (codeRevision: string) =>
  new MockActivityEnvironment().run(() => evaluationActivities(deps(codeRevision)).evaluateVersions({ line, versions: [1], suites })) as Promise<Results>;

/** Plants a sentinel in the stored results: a reused result returns it, a fresh measurement does not. */
async function plant(set: { backend?: string } = {}) {
  await admin`update evaluations set metrics = metrics || '{"loss": 999}'::jsonb ${set.backend ? admin`, backend = ${set.backend}` : admin``}`;
}

describe('the evaluation cache', () => {
  it('reuses a stored result for the same weights, data, backend and code revision', async () => {
    const first = await evaluate('rev-a');
    const loss = (first[1]![suites[0]!.name] as { loss: number }).loss;
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(999);
    await plant();
    expect((await evaluate('rev-a'))[1]![suites[0]!.name]).toMatchObject({ loss: 999 });
  });

  it('measures again under another code revision', async () => {
    await plant();
    const again = await evaluate('rev-b');
    expect((again[1]![suites[0]!.name] as { loss: number }).loss).toBeLessThan(999);
    const stored = await t.registry.getEvaluations(line, 1);
    expect(stored.find((e) => e.suite === suites[0]!.name)).toMatchObject({ codeRevision: 'rev-b' });
  });

  it('measures again when the stored result came from another backend', async () => {
    await plant({ backend: 'another-backend' });
    const again = await evaluate('rev-b');
    expect((again[1]![suites[0]!.name] as { loss: number }).loss).toBeLessThan(999);
  });
});
