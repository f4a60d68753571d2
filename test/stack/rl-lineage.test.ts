/**
 * What a feedback version's lineage says it cost and how it was defended (issue 33, items 10 and 11), read
 * through `perennial lineage`: the tokens and FLOPs its RL update spent (sampling and update) and the update's
 * final loss, and, when the cycle asks for plasticity interventions (the stable version measured below the drop's
 * floor), which the RL update applied and which it refused, with the reason.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { flopsPerToken, PRESETS } from '../../model/config.ts';
import { cli } from '../helpers/cli-in-process.ts';
import { cliEnv, startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const line = `rll-${Date.now().toString(36).slice(-5)}`;
const saved = { ...process.env };

beforeAll(async () => {
  loop = await startTestLoop('rllineage');
  await loop.createLine(line);
  await loop.startWorkers();
  Object.assign(process.env, cliEnv(loop));
});
afterAll(async () => {
  process.env = saved;
  await loop?.close();
});

interface LineageJson {
  version: { version: number; recipe: { interventions?: string[] }; compute: { tokens: number; flops: number } };
  trainingRun: { steps: number; tokens: number; flops: number; finalLoss: number | null };
  rl?: {
    recipe: { interventions?: { applied: { intervention: string; detail: string }[]; refused: { intervention: string; reason: string }[] } };
    rewardStats: { sampledTokens: number; trainedTokens: number };
  };
}

describe('a feedback version in the lineage', () => {
  it('records the RL update’s compute and loss, and the plasticity interventions it applied or refused with the reason', async () => {
    const text = join(loop.dataDir, 'text.jsonl');
    writeFileSync(text, generalText(rng(1), 30).map((r) => JSON.stringify(r)).join('\n') + '\n');
    const { request } = await sendDrop(loop, line, text);
    expect((await waitForCycle(loop.client, line, request.digest)).verdict).toBe('promoted');

    const fb = join(loop.dataDir, 'feedback.jsonl');
    const words = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta', 'lambda', 'zeta'];
    writeFileSync(fb, words.map((w) => JSON.stringify({ prompt: `say ${w}:`, verifier: { kind: 'regex', pattern: 'e' }, gold: { kind: 'regex', pattern: '[eE]' } })).join('\n') + '\n');
    // A floor no version reaches (10x a fresh model): the cycle asks for every intervention.
    const recipe = JSON.stringify({ plasticityFloor: 10, rl: { steps: 6, checkEvery: 3, promptsPerStep: 2, samplesPerPrompt: 4, maxTokens: 4 } });
    const sent = JSON.parse((await cli('feedback', line, fb, '--recipe', recipe, '--wait', '--json')).out) as { result: { version: number } };
    const version = sent.result.version;
    expect(version).toBe(2);

    const lineage = JSON.parse((await cli('lineage', `${line}@${version}`, '--json')).out) as LineageJson;
    // Compute: what sampling and the update spent, in the run and the version alike.
    const run = lineage.trainingRun;
    expect(run.steps).toBeGreaterThan(0);
    expect(run.tokens).toBe(lineage.rl!.rewardStats.sampledTokens + lineage.rl!.rewardStats.trainedTokens);
    expect(lineage.rl!.rewardStats.sampledTokens).toBeGreaterThan(0);
    expect(lineage.rl!.rewardStats.trainedTokens).toBeGreaterThan(0);
    expect(run.flops).toBeGreaterThan(lineage.rl!.rewardStats.trainedTokens * flopsPerToken(PRESETS.tiny));
    expect(lineage.version.compute).toMatchObject({ tokens: run.tokens, flops: run.flops });
    // The policy update's loss (surrogate, KL penalty and the replay cross-entropy of the text drop).
    expect(run.finalLoss).not.toBeNull();
    expect(Number.isFinite(run.finalLoss)).toBe(true);
    expect(run.finalLoss).toBeGreaterThan(0);

    // Interventions: the version's recipe lists only what was applied; the RL run says what was refused and why.
    const iv = lineage.rl!.recipe.interventions!;
    expect(iv.applied.map((a) => a.intervention)).toEqual(['dormant-reset', 'l2-init']);
    expect(iv.refused.map((r) => r.intervention)).toEqual(['shrink-perturb', 'rewarm']);
    expect(iv.refused.find((r) => r.intervention === 'shrink-perturb')!.reason).toMatch(/released model/);
    expect(lineage.version.recipe.interventions).toEqual(['dormant-reset', 'l2-init']);

    const shown = await cli('lineage', `${line}@${version}`);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(new RegExp(`compute ${run.tokens} tokens, [1-9]\\.\\d{2}e\\+\\d+ flops`));
    expect(shown.out).toMatch(/RL run: \d+ steps, stopped by \w+/);
    expect(shown.out).toMatch(/plasticity interventions: applied dormant-reset \(\d+ dormant MLP units? reset[^)]*\), l2-init \(L2 pull 0\.001 toward/);
    expect(shown.out).toMatch(/refused shrink-perturb \(it changes the released model's answers[^)]*\), rewarm \(the RL update runs at a constant learning rate/);
  });
});
