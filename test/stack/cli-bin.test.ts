/**
 * The `perennial` CLI through its real bin (a child process, as a shell runs it) against a real stack: the
 * effective gate rules after a deep override, per-suite metrics and gate bounds, rollbacks that the
 * registry or the workflow refuse (with their own reasons), rollback to a gate-failed version with
 * --override (recorded in the gate decision and the audit log), and commands whose reader goes away.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generalText, rng } from '../../bench/scenario.ts';
import { RequestRefusedError, rollback } from '../../client/ops.ts';
import { BIN, npxStyleLink, runBin } from '../helpers/bin.ts';
import { cliEnv, startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
let env: NodeJS.ProcessEnv;
const line = `bin-${Date.now().toString(36).slice(-5)}`;
const perennial = (...args: string[]) => runBin(args, { env });

beforeAll(async () => {
  loop = await startTestLoop('clibin');
  await loop.startWorkers();
  env = { ...process.env, ...cliEnv(loop) };
});
afterAll(async () => {
  await loop?.close();
});

function drop(name: string, seed: number) {
  const file = join(loop.dataDir, name);
  writeFileSync(
    file,
    generalText(rng(seed), 40)
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  return file;
}

describe('the perennial bin on a real stack', () => {
  it('merges --gate deeply and prints the effective rules', async () => {
    const created = await perennial(
      ...['line', 'create', line, '--kind', 'foundation', '--preset', 'tiny', '--steps', '60'],
      ...['--recipe', '{"batchSize":8,"checkpointEvery":20,"warmupSteps":5,"learningRate":0.005}'],
      ...['--gate', '{"maxRegression":{"loss":0.02}}'],
    );
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    // The README's own example changes one bound and keeps the exact-match bound beside it.
    expect(created.out).toMatch(/maxRegression +loss 0\.02, exactMatch 0\.1\b/);
    expect(created.out).toMatch(/floors +loss 6, exactMatch 0\b/);
    expect(created.out).toMatch(/recipe: steps 60, batchSize 8, learningRate 0\.005/);
    const stored = await loop.registry.getLine(line);
    expect(stored.gateRules).toMatchObject({ maxRegression: { loss: 0.02, exactMatch: 0.1 }, minImprovement: { loss: 0.02, exactMatch: 0 } });
    expect(stored.recipe).toMatchObject({ steps: 60, batchSize: 8, replayRatio: 0.3 });
  });

  it('shows per-suite metrics and gate bounds, and rolls back to a gate-failed version only with --override', async () => {
    const first = await perennial('drop', line, drop('bin-1.jsonl', 1), '--wait', '--json');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.out).result).toMatchObject({ verdict: 'promoted', version: 1 });
    // A candidate that barely trains cannot improve on the new drop's suite: its gate fails.
    const second = await perennial(
      ...['drop', line, drop('bin-2.jsonl', 2), '--wait', '--json'],
      ...['--recipe', '{"steps":1,"learningRate":1e-9,"minLearningRate":0,"warmupSteps":0}'],
    );
    // The drop's override is laid over the line's recipe; the rest of the line's recipe stays.
    expect(JSON.parse(second.out).effectiveRecipe).toMatchObject({ steps: 1, learningRate: 1e-9, batchSize: 8, checkpointEvery: 20, replayRatio: 0.3 });
    expect(JSON.parse(second.out).result).toMatchObject({ verdict: 'rejected', version: 2 });
    expect(second.code).toBe(3);

    const json = JSON.parse((await perennial('versions', line, '--json')).out);
    const v2 = json.find((v: { version: number }) => v.version === 2);
    expect(v2.gate).toMatchObject({ verdict: 'fail', champion: 1 });
    expect(v2.gate.suites.length).toBeGreaterThan(0);
    const failed = v2.gate.suites.find((s: { pass: boolean }) => !s.pass);
    expect(failed).toMatchObject({ metric: 'loss', bound: expect.any(Number), candidate: expect.any(Number), champion: expect.any(Number) });
    expect(v2.metrics[failed.suite]).toMatchObject({ kind: 'text', loss: failed.candidate, perplexity: expect.any(Number) });
    const table = await perennial('versions', line, '--metrics');
    expect(table.code).toBe(0);
    expect(table.out).toContain(`${line}@2: gate fail against ${line}@1`);
    expect(table.out).toMatch(/suite +loss +perplexity +exact +judged on +champion +bound +pass/);
    expect(table.out).toMatch(
      new RegExp(`${failed.suite} +${failed.candidate.toFixed(4)} +\\S+ +\\S+ +loss +${failed.champion.toFixed(4)} +${failed.bound.toFixed(4)} +NO`),
    );

    // Refusals carry their reason, not "Workflow Update failed".
    const missing = await perennial('rollback', line, '--to', '99', '--reason', 'x');
    expect(missing.err).toBe(`perennial: ${line} has no version 99; it has 1-2\n`);
    expect(missing.code).toBe(1);
    const refused = await perennial('rollback', line, '--to', '2', '--reason', 'v1 misreads dates');
    expect(refused.err).toMatch(new RegExp(`${line}@2 failed its gate \\(failed on .*\\); rolling back to it needs --override --reason`));
    expect(refused.code).toBe(1);
    // The workflow enforces the same when asked directly (no CLI in front of it).
    for (const [to, message] of [
      [99, `${line} has no version 99; it has 1-2`],
      [2, `${line}@2 failed its gate`],
    ] as const) {
      const err = await rollback(loop, line, { to, reason: 'direct', actor: 'test' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RequestRefusedError);
      expect((err as Error).message).toContain(message);
    }
    expect((await loop.registry.getChannels(line)).find((c) => c.channel === 'stable')?.version).toBe(1);

    const over = await perennial('rollback', line, '--to', '2', '--reason', 'v1 misreads dates', '--override', '--actor', 'ops', '--json');
    expect(over.err).toBe('');
    expect(over.code).toBe(0);
    expect(JSON.parse(over.out)).toMatchObject({ channel: 'stable', from: 1, to: 2, override: { actor: 'ops', reason: 'v1 misreads dates' } });
    const decision = await loop.registry.getGateDecisionFor(line, 2);
    expect(decision).toMatchObject({ verdict: 'fail', override: { actor: 'ops', reason: 'rollback: v1 misreads dates' } });
    const audit = await loop.registry.listAudit({ subject: `${line}@2` });
    expect(audit.find((e) => e.action === 'gate.override')).toMatchObject({ actor: 'ops', details: { id: decision!.id, verdict: 'fail' } });
    const releases = await loop.registry.listReleases(line, { channel: 'stable' });
    expect(releases.at(-1)).toMatchObject({ toVersion: 2, gateDecisionId: decision!.id, actor: 'ops' });
    // Back to a version that passed needs nothing more.
    const back = await perennial('rollback', line, '--to', '1', '--reason', 'v2 was worse after all');
    expect(back.code).toBe(0);
    expect((await perennial('versions', line)).out).toMatch(/\n2 +1 +- +fail \(overridden by ops\)/);
  });

  it('passes a workflow validator refusal through in its own words', async () => {
    const r = await perennial('report-regression', line, '--reason', 'answers got worse');
    expect(r.err).toBe(`perennial: line ${line} has no version in its canary window now (phase: idle)\n`);
    expect(r.code).toBe(1);
  });

  it('says when the audit log goes on past the page it prints', async () => {
    const page = await perennial('audit', 'log', '--limit', '2');
    expect(page.code).toBe(0);
    const lines = page.out.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('(more entries follow: perennial audit log --after 2)');
    // The last page says nothing more; JSON stays the array of entries.
    const all = await loop.registry.listAudit({ limit: 1_000_000 });
    expect((await perennial('audit', 'log', '--after', String(all.at(-1)!.seq - 1))).out.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse((await perennial('audit', 'log', '--limit', '2', '--json')).out)).toHaveLength(2);
  });

  it('runs through an npx-style symlink', async () => {
    const r = await runBin(['line', 'list'], { env, bin: npxStyleLink() });
    expect(r.code).toBe(0);
    expect(r.out).toContain(line);
  });

  it('ends quietly when its reader goes away, as `git log | head` does', async () => {
    for (const args of [['status'], ['versions', line, '--metrics'], ['audit', 'log']]) {
      const r = await runBin(args, { env, closeStdout: true });
      expect(r.err).toBe('');
      expect(r.code).toBe(141);
    }
    // And in a real pipeline: head takes the first lines, the CLI stops without a word on stderr.
    const pipeline = (command: string) =>
      new Promise<{ out: string; err: string }>((done) => {
        const sh = spawn('bash', ['-c', `${command}; echo "status \${PIPESTATUS[0]}" >&2`], { env });
        const timer = setTimeout(() => sh.kill('SIGKILL'), 60_000);
        let out = '';
        let err = '';
        sh.stdout.on('data', (b) => (out += b));
        sh.stderr.on('data', (b) => (err += b));
        sh.on('close', () => (clearTimeout(timer), done({ out, err })));
      });
    const cli = `"${process.execPath}" "${BIN}"`;
    const piped = await pipeline(`${cli} audit log | head -2`);
    expect(piped.out.trim().split('\n')).toHaveLength(2);
    expect(piped.err).toMatch(/^status (0|141)\n$/);
    // `status --watch` writes until Ctrl-C; off a terminal it prints a progress line every 2 s, and ends
    // when its reader does.
    const watched = await pipeline(`${cli} status ${line} --watch 2>&1 | head -2`);
    expect(watched.out.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^${line} idle +\\|`)), expect.stringMatching(/steps/)]);
    expect(watched.err).toBe('status 141\n');
  });
});
