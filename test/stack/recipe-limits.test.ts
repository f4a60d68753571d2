/**
 * A line's limits on what one cycle may spend (issue 33, item 2), through the CLI and the loop: a drop whose
 * recipe override asks for more steps, a bigger batch, a checkpoint every step or more FLOPs than its line allows
 * is refused at ingest with the drop and the limit named, in one attempt, and the cycle ends with that reason; a
 * limit tightened with `perennial line limits` refuses an override that passed before.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli-in-process.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { cliEnv, startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const line = `limits-${Date.now().toString(36).slice(-5)}`;
const saved = { ...process.env };
let drops: string;

beforeAll(async () => {
  loop = await startTestLoop('limits');
  await loop.startWorkers();
  Object.assign(process.env, cliEnv(loop));
  // The loop's drop root (<data>/drops), where ingest reads drops from.
  drops = join(loop.dataDir, 'drops');
  mkdirSync(drops, { recursive: true });
});
afterAll(async () => {
  process.env = saved;
  await loop?.close();
});

const writeDrop = (name: string, seed: number) => {
  const file = join(drops, name);
  writeFileSync(file, generalText(rng(seed), 30).map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

/** Sends `file` with `recipe` and waits; returns the cycle's result and how the cycle's activities ran. */
async function send(file: string, recipe: object) {
  const r = await cli('drop', line, file, '--recipe', JSON.stringify(recipe), '--wait', '--json');
  const { result } = JSON.parse(r.out) as { result: { cycleId: string; verdict: string; reason: string; version?: number } };
  return { code: r.code, result, attempts: await attemptsOf(result.cycleId) };
}

/** Each activity attempt a cycle's history records, in order. */
async function attemptsOf(cycleId: string) {
  const history = await loop.client.workflow.getHandle(cycleId).fetchHistory();
  const events = history.events ?? [];
  const scheduled = new Map<string, string>();
  for (const e of events)
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
  return events
    .filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => ({ activity: scheduled.get(String(e.activityTaskStartedEventAttributes!.scheduledEventId)), attempt: e.activityTaskStartedEventAttributes!.attempt }));
}

describe("a line's limits on a drop's recipe", () => {
  it('refuses an over-limit override at ingest, naming the drop and the limit, and ends the cycle with that reason in one attempt', async () => {
    const created = await cli('line', 'create', line, '--kind', 'foundation', '--preset', 'tiny', '--steps', '60', '--recipe', '{"batchSize":8,"checkpointEvery":20}');
    expect(created.code, created.err).toBe(0);
    // The defaults, from the default recipe (200 steps, batch 16, a checkpoint every 50): `line show` prints them.
    const shown = await cli('line', 'show', line);
    expect(shown.out).toMatch(/maxSteps\s+2000\s.*\(default\)/);
    expect(shown.out).toMatch(/maxBatchSize\s+64\s/);
    expect(shown.out).toMatch(/keepCheckpoints\s+3\s/);
    expect(shown.out).toMatch(/minCheckpointEvery\s+10\s/);
    expect((await cli('status', line)).out).toMatch(/limits: maxSteps 2000, maxBatchSize 64, maxFlopsPerCycle [\d.e+]+, keepCheckpoints 3/);

    const file = writeDrop('a.jsonl', 1);
    for (const [recipe, limit] of [
      [{ steps: 320_000 }, /steps 320000 is over the line's limit maxSteps 2000/],
      [{ batchSize: 1024 }, /batchSize 1024 is over the line's limit maxBatchSize 64/],
      [{ checkpointEvery: 1 }, /checkpointEvery 1 is under the line's limit minCheckpointEvery 10/],
      // Each within its own limit (2000 steps, batch 64), together 40x the FLOPs of 200 steps x batch 16: the cap is 16x.
      [{ steps: 2000, batchSize: 64 }, /2000 steps x batch 64 = [\d.e+]+ training FLOPs is over the line's limit maxFlopsPerCycle/],
      [{ search: { budgetFlops: 1e15 } }, /the search budget of [\d.e+]+ training FLOPs is over the line's limit maxFlopsPerCycle/],
    ] as const) {
      const { result, attempts } = await send(file, recipe);
      expect(result.verdict).toBe('rejected');
      expect(result.reason).toMatch(/^drop [0-9a-f]{12} \(a\): its recipe is outside line limits-\w+'s limits: /);
      expect(result.reason).toMatch(limit);
      // Refused at ingest, once: no retries, no training.
      expect(attempts).toEqual([{ activity: 'ingestDrop', attempt: 1 }]);
    }
    // Never recorded: the same file within the limits is taken and trained.
    expect(await loop.registry.listDrops(line)).toEqual([]);
    const fine = await send(file, { steps: 100 });
    expect(fine.result.verdict).toBe('promoted');
  });

  it('refuses an override that passed before once `perennial line limits` tightens the limit', async () => {
    const before = await send(writeDrop('b.jsonl', 2), { steps: 100 });
    expect(before.result.verdict).toBe('promoted');
    // A limit the line's own recipe breaks is refused, naming it.
    const tooTight = await cli('line', 'limits', line, '{"maxSteps":50}');
    expect(tooTight.code).toBe(2);
    expect(tooTight.err).toMatch(/steps 60 is over the line's limit maxSteps 50/);
    const tightened = await cli('line', 'limits', line, '{"maxSteps":60}', '--reason', 'test: shorter cycles');
    expect(tightened.code, tightened.err).toBe(0);
    expect(tightened.out).toMatch(/maxSteps\s+60\s+steps of one training run\n/);
    const after = await send(writeDrop('c.jsonl', 3), { steps: 100 });
    expect(after.result.verdict).toBe('rejected');
    expect(after.result.reason).toMatch(/steps 100 is over the line's limit maxSteps 60/);
    expect(after.attempts).toEqual([{ activity: 'ingestDrop', attempt: 1 }]);
    // null takes it back to its default.
    const reset = await cli('line', 'limits', line, '{"maxSteps":null}', '--json');
    expect(JSON.parse(reset.out).effectiveLimits.maxSteps).toBe(2000);
  });

  it("refuses a feedback drop whose RL update is over the line's limits at ingest, in one attempt, kept in quarantine with the reason", async () => {
    // The RL defaults, from DEFAULT_RL (20 steps of 4 prompts x 8 samples of up to 6 tokens): shown with the others.
    const shown = await cli('line', 'limits', line);
    expect(shown.out).toMatch(/maxRlSteps\s+200\s+steps of a feedback cycle's RL update \(default\)/);
    expect(shown.out).toMatch(/maxRlSamplesPerStep\s+128\s/);
    expect(shown.out).toMatch(/maxRlTokens\s+48\s/);
    const words = Array.from({ length: 500 }, (_, i) => `w${i}`);
    const file = join(drops, 'feedback.jsonl');
    writeFileSync(file, words.map((w) => JSON.stringify({ prompt: `say ${w}:`, verifier: { kind: 'regex', pattern: 'e' }, gold: { kind: 'exact', answer: w } })).join('\n') + '\n');
    for (const [rl, limit] of [
      [{ steps: 100_000 }, /rl\.steps 100000 is over the line's limit maxRlSteps 200/],
      [{ promptsPerStep: 256, samplesPerPrompt: 64 }, /rl\.promptsPerStep 256 x rl\.samplesPerPrompt 64 = 16384 samples a step is over the line's limit maxRlSamplesPerStep 128/],
      [{ maxTokens: 256 }, /rl\.maxTokens 256 is over the line's limit maxRlTokens 48/],
      // Each within its own limit, together ~9x the FLOPs cap.
      [{ steps: 200, promptsPerStep: 16, samplesPerPrompt: 8, maxTokens: 20 }, /the RL update of 200 steps x 128 samples of up to 20 tokens = up to [\d.e+]+ FLOPs is over the line's limit maxFlopsPerCycle/],
      // Within the cap on its fields alone; its held-out checks (~100 prompts, one check a step) are what break it, once the file is read.
      [{ steps: 200, checkEvery: 1 }, /the RL update of 200 steps x 32 samples of up to 6 tokens = up to [\d.e+]+ FLOPs is over the line's limit maxFlopsPerCycle/],
    ] as const) {
      const r = await cli('feedback', line, file, '--recipe', JSON.stringify({ rl }), '--wait', '--json');
      const { request, result } = JSON.parse(r.out) as { request: { digest: string }; result: { cycleId: string; verdict: string; reason: string } };
      expect(result.verdict).toBe('rejected');
      expect(result.reason).toMatch(/^drop [0-9a-f]{12} \(feedback\): its recipe is outside line limits-\w+'s limits: /);
      expect(result.reason).toMatch(limit);
      expect(await attemptsOf(result.cycleId)).toEqual([{ activity: 'ingestDrop', attempt: 1 }]);
      expect(JSON.parse(readFileSync(join(loop.dataDir, 'quarantine', request.digest, 'reason.json'), 'utf8')).reason).toBe(result.reason);
      // Not recorded: the same file may come again with an RL update within the limits.
      expect(await loop.registry.getDrop(line, request.digest)).toBeNull();
    }
  });
});
