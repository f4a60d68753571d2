/**
 * Learning from feedback inside the release loop (issue 16), on the real stack: a foundation line's text drop is
 * promoted, then `perennial feedback` sends verifier prompts; the cycle adapts the stable version by RL, the
 * gate decision carries the rl checks with their numbers, and the version has its RL run in the registry. A
 * feedback file with a bad record is quarantined naming the file and line; a missing file is refused (exit 2).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineState, sendDrop, waitForCycle } from '../../client/ops.ts';
import { generalText, rng } from '../../bench/scenario.ts';
import { cli } from '../helpers/cli-in-process.ts';
import { cliEnv, startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const line = `rl-${Date.now().toString(36).slice(-5)}`;
const saved = { ...process.env };

beforeAll(async () => {
  loop = await startTestLoop('rlcycle');
  await loop.createLine(line);
  await loop.startWorkers();
  Object.assign(process.env, cliEnv(loop));
});
afterAll(async () => {
  process.env = saved;
  await loop?.close();
});

const RL_RECIPE = JSON.stringify({ rl: { steps: 6, checkEvery: 3, promptsPerStep: 2, samplesPerPrompt: 4, maxTokens: 4 } });

describe('a feedback drop in the release loop', () => {
  it('promotes a text drop first (the stable version feedback adapts)', async () => {
    const text = join(loop.dataDir, 'text.jsonl');
    writeFileSync(text, generalText(rng(1), 30).map((r) => JSON.stringify(r)).join('\n') + '\n');
    const { request } = await sendDrop(loop, line, text);
    expect((await waitForCycle(loop.client, line, request.digest)).verdict).toBe('promoted');
  });

  it('rejects reward hacking: the proxy reward rises while the gold check stays down (rl:over-optimisation)', async () => {
    const fb = join(loop.dataDir, 'hacked.jsonl');
    const words = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
    // The proxy accepts any answer with an "e"; the gold wants the exact word, which the tiny model never says.
    writeFileSync(fb, words.map((w) => JSON.stringify({ prompt: `spell ${w}:`, verifier: { kind: 'regex', pattern: 'e' }, gold: { kind: 'exact', answer: `${w}!` } })).join('\n') + '\n');
    const { request } = await sendDrop(loop, line, fb, { kind: 'feedback', recipe: JSON.parse(RL_RECIPE) });
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('rejected');
    expect(summary.reason).toMatch(/RL failed: rl:over-optimisation: over-optimisation: held-out reward/);
    const gate = await loop.registry.getGateDecisionFor(line, summary.version!);
    expect(gate!.verdict).toBe('fail');
    expect((gate!.suites as { suite: string; pass: boolean }[]).find((s) => s.suite === 'rl:over-optimisation')!.pass).toBe(false);
    // Recorded all the same (a rejected version keeps its run), and stable stays where it was.
    expect(await loop.registry.getRlRuns(line, summary.version!)).toHaveLength(1);
    expect((await loop.registry.getDrop(line, request.digest))?.status).toBe('rejected');
    expect((await loop.registry.getChannels(line)).find((c) => c.channel === 'stable')?.version).toBe(1);
  });

  it('refuses feedback whose prompts have no gold of their own on a line that does not allow it, then takes it once the line does', async () => {
    const fb = join(loop.dataDir, 'no-gold.jsonl');
    const words = ['red', 'green', 'blue', 'white', 'black', 'brown', 'pink', 'grey', 'teal', 'cyan', 'gold', 'rose'];
    // Four without gold, four whose gold is their verifier again (no check of its own), four with a gold of their own.
    const records = words.map((w, i) => ({
      prompt: `name ${w}:`,
      verifier: { kind: 'regex', pattern: 'e' },
      ...(i < 4 ? {} : i < 8 ? { gold: { kind: 'regex', pattern: 'e' } } : { gold: { kind: 'exact', answer: w } }),
    }));
    writeFileSync(fb, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = await cli('feedback', line, fb, '--wait', '--json');
    expect(r.code).toBe(3);
    const sent = JSON.parse(r.out) as { request: { digest: string }; result: { verdict: string; reason: string } };
    expect(sent.result.verdict).toBe('quarantined');
    expect(sent.result.reason).toBe(
      `${fb}: 8 of 12 verifier prompts have no gold of their own, so the reward-hacking guard could not fire; give each a "gold" (a stricter check than its verifier), ` +
        `or allow it on line ${line} with gate rule allowFeedbackWithoutGold (perennial line gate ${line} '{"allowFeedbackWithoutGold":true}')`,
    );
    expect((await loop.registry.getDrop(line, sent.request.digest))?.status).toBe('quarantined');
    expect(JSON.parse(readFileSync(join(loop.dataDir, 'quarantine', sent.request.digest, 'reason.json'), 'utf8')).reason).toBe(sent.result.reason);
    expect(await loop.registry.getRlRuns(line)).toHaveLength(1);

    // The operator allows it on the line (audited); the next test's feedback, without gold, is then taken.
    const gate = await cli('line', 'gate', line, '{"allowFeedbackWithoutGold":true}', '--reason', 'verifiers are exact here');
    expect(gate.code).toBe(0);
    expect(gate.out).toContain('feedback gold   optional (allowFeedbackWithoutGold: a run without one is recorded "no gold check")');
    expect(((await loop.registry.getLine(line)).gateRules as { allowFeedbackWithoutGold?: boolean }).allowFeedbackWithoutGold).toBe(true);
  });

  it('adapts the stable version by RL: rl checks in the gate, the RL run recorded, curves in the cycle', async () => {

    const fb = join(loop.dataDir, 'feedback.jsonl');
    const words = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta', 'lambda', 'zeta'];
    // No `gold` (the line allows it since the test before): the run is recorded as having no gold check.
    writeFileSync(fb, words.map((w) => JSON.stringify({ prompt: `say ${w}:`, verifier: { kind: 'regex', pattern: 'e' } })).join('\n') + '\n');
    const r = await cli('feedback', line, fb, '--recipe', RL_RECIPE, '--wait', '--json');
    const sent = JSON.parse(r.out) as { request: { kind?: string; digest: string }; result: { verdict: string; version: number; reason: string; cycleId: string } };
    expect(sent.request.kind).toBe('feedback');
    expect(sent.result.verdict).toBe('promoted');
    expect(r.code).toBe(0);
    const version = sent.result.version;
    expect(version).toBe(3);
    expect((await loop.registry.getVersion(line, version)).parentVersion).toBe(1);

    const [run] = await loop.registry.getRlRuns(line, version);
    expect(run!.feedbackDigests).toEqual([sent.request.digest]);
    expect(run!.recipe).toMatchObject({ steps: 6, samplesPerPrompt: 4, klCoef: 0.05, klBudget: 0.5, clip: 0.2 });
    expect(run!.checks[0]!.step).toBe(0);
    expect(run!.checks.length).toBeGreaterThanOrEqual(2);
    expect(run!.finalKl).toBeGreaterThanOrEqual(0);
    expect(run!.rewardStats.goldPrompts).toBe(0);

    const gate = await loop.registry.getGateDecisionFor(line, version);
    const suites = gate!.suites as { suite: string; pass: boolean; reason: string }[];
    expect(suites.map((s) => s.suite)).toEqual(expect.arrayContaining(['rl:reward', 'rl:gold', 'rl:kl', 'rl:over-optimisation']));
    expect(suites.find((s) => s.suite === 'rl:kl')!.reason).toMatch(/KL to the released version \d+\.\d{4} (within|over) the budget 0\.5/);
    expect(suites.find((s) => s.suite === 'rl:reward')!.reason).toMatch(/held-out reward \d\.\d{3} -> \d\.\d{3}/);
    // The line's own suites were judged too, and every check agrees with the verdict.
    expect(suites.some((s) => !s.suite.startsWith('rl:'))).toBe(true);
    expect(gate!.verdict).toBe('pass');
    expect(suites.every((s) => s.pass)).toBe(true);
    expect(run!.checks.at(-1)!.reward).toBeGreaterThan(run!.checks[0]!.reward);
    expect(sent.result.reason).toMatch(/RL passed: held-out reward/);
    expect((await loop.registry.getChannels(line)).find((c) => c.channel === 'stable')?.version).toBe(version);

    const state = await loop.client.workflow.getHandle(sent.result.cycleId).query<{ rl?: { checks: unknown[]; klBudget: number } }>('cycleState');
    expect(state.rl!.checks).toHaveLength(run!.checks.length);
    expect(state.rl!.klBudget).toBe(0.5);

    // Content-addressed: the same feedback sent again is a duplicate, not a second RL cycle.
    const before = (await lineState(loop.client, line))!.duplicatesIgnored;
    await sendDrop(loop, line, fb, { kind: 'feedback' });
    await expect.poll(async () => (await lineState(loop.client, line))!.duplicatesIgnored, { timeout: 10_000 }).toBe(before + 1);
    expect(await loop.registry.getRlRuns(line)).toHaveLength(2);

    const status = await cli('status', line);
    expect(status.code).toBe(0);
    expect(status.out).toContain('RL runs (feedback):');
    expect(status.out).toMatch(new RegExp(`v${version} +held-out reward \\d\\.\\d{3} -> \\d\\.\\d{3} +gold: no gold check +KL \\d\\.\\d{4} \\(budget 0\\.5\\)`));
    // The reward-hacking run before it had a gold of its own.
    expect(status.out).toMatch(/v2 +held-out reward \d\.\d{3} -> \d\.\d{3} +gold \d\.\d{3} -> \d\.\d{3} +KL/);

    // perennial versions: the RL run in --json (null for the text version) and a line under --metrics.
    const versions = await cli('versions', line, '--json');
    const rows = JSON.parse(versions.out) as {
      version: number;
      rl: { rewardBefore: number; rewardAfter: number; finalKl: number; klBudget: number; stoppedBy: string; goldCheck: string | null; checks: unknown[] } | null;
    }[];
    expect(rows.find((v) => v.version === 1)!.rl).toBeNull();
    const rl = rows.find((v) => v.version === version)!.rl!;
    expect(rl).toMatchObject({ rewardBefore: run!.checks[0]!.reward, rewardAfter: run!.checks.at(-1)!.reward, finalKl: run!.finalKl, klBudget: 0.5, stoppedBy: run!.stoppedBy });
    expect(rl.checks).toHaveLength(run!.checks.length);
    expect(rl.goldCheck).toBe('no gold check');
    expect(rows.find((v) => v.version === 2)!.rl!.goldCheck).toBe('gold on every held-out prompt');
    const metrics = await cli('versions', line, '--metrics');
    expect(metrics.code).toBe(0);
    expect(metrics.out).toMatch(/\n {2}rl: held-out reward \d\.\d{3} -> \d\.\d{3} +gold: no gold check +KL \d\.\d{4} \(budget 0\.5\) +\d+ steps, stopped by /);
    const out = join(loop.dataDir, 'rl-report.html');
    expect((await cli('report', '--out', out, '--line', line)).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(new RegExp(`<tr><td>v${version}</td><td>[a-z-]+</td><td>[0-9.]+</td><td>no gold check</td>`));
  });

  it('quarantines a feedback file with a bad record, naming the file and line', async () => {
    const bad = join(loop.dataDir, 'bad-feedback.jsonl');
    writeFileSync(bad, '{"prompt":"a","verifier":{"kind":"exact","answer":"x"}}\n{"prompt":"b","verifier":{"kind":"regex","pattern":"("}}\n');
    const r = await cli('feedback', line, bad, '--wait', '--json');
    expect(r.code).toBe(3);
    const sent = JSON.parse(r.out) as { request: { digest: string }; result: { verdict: string; reason: string } };
    expect(sent.result.verdict).toBe('quarantined');
    expect(sent.result.reason).toContain(bad);
    expect(sent.result.reason).toContain('line 2');
    expect((await loop.registry.getDrop(line, sent.request.digest))?.status).toBe('quarantined');
    expect(JSON.parse(readFileSync(join(loop.dataDir, 'quarantine', sent.request.digest, 'reason.json'), 'utf8')).line).toBe(line);
  });

  it('runs a catastrophic-backtracking verifier in linear time (RE2), and refuses a backreference naming the line', async () => {
    // ^(.+)+\u0000 never matches and, under a backtracking engine, costs 2^n on an n-character answer: with answers
    // of up to 28 characters (the most the tiny model's context leaves) the checks blocked the event loop for minutes; on RE2 each is microseconds.
    const evil = join(loop.dataDir, 'evil.jsonl');
    const prompts = Array.from({ length: 10 }, (_, i) => ({ prompt: `q${i}:`, verifier: { kind: 'regex', pattern: '^(.+)+\u0000' }, gold: { kind: 'exact', answer: `${i}` } }));
    writeFileSync(evil, prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const recipe = JSON.stringify({ rl: { steps: 2, checkEvery: 1, promptsPerStep: 2, samplesPerPrompt: 4, maxTokens: 28 } });
    const started = Date.now();
    const r = await cli('feedback', line, evil, '--recipe', recipe, '--wait', '--json');
    const sent = JSON.parse(r.out) as { request: { digest: string }; result: { verdict: string; version: number; reason: string } };
    // Accepted and judged (the reward never rises, so the candidate is rejected by rl:reward), not quarantined or stuck.
    expect(sent.result.verdict).toBe('rejected');
    expect(sent.result.reason).toMatch(/rl:reward/);
    const [run] = await loop.registry.getRlRuns(line, sent.result.version);
    expect(run!.checks.map((c) => c.reward)).toEqual([0, 0, 0]);
    expect(Date.now() - started).toBeLessThan(60_000);

    const backref = join(loop.dataDir, 'backref.jsonl');
    writeFileSync(backref, '{"prompt":"a","verifier":{"kind":"exact","answer":"x"}}\n{"prompt":"b","verifier":{"kind":"regex","pattern":"^(ab)\\\\1$"}}\n');
    const b = await cli('feedback', line, backref, '--wait', '--json');
    expect(b.code).toBe(3);
    const refused = JSON.parse(b.out) as { request: { digest: string }; result: { verdict: string; reason: string } };
    expect(refused.result.verdict).toBe('quarantined');
    expect(refused.result.reason).toBe(
      `${backref}: line 2: verifier regex: "pattern" is not a valid RE2 regular expression (invalid escape sequence); RE2 has no backreferences, lookahead or lookbehind, and writes \\x{41} for \\u0041`,
    );
    expect(JSON.parse(readFileSync(join(loop.dataDir, 'quarantine', refused.request.digest, 'reason.json'), 'utf8')).reason).toBe(refused.result.reason);
  });

  it('refuses a missing file or a folder before connecting, naming the path (exit 2)', async () => {
    const missing = join(loop.dataDir, 'no-such-feedback.jsonl');
    const r = await cli('feedback', line, missing);
    expect(r.code).toBe(2);
    expect(r.err).toContain(missing);
    const folder = await cli('feedback', line, loop.dataDir);
    expect(folder.code).toBe(2);
    expect(folder.err).toMatch(/is a folder, not a file/);
  });
});
