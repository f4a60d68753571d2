/**
 * CLI arguments are validated at the boundary: a bad argument is answered at once (exit 2) with the
 * argument's name and what it takes, before the command connects to anything. Run with no stack at all: a
 * command that reached for Temporal or PostgreSQL before validating would answer "no perennial stack is
 * running" (exit 1) instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ZodError } from 'zod';
import { main } from '../../scripts/cli.ts';
import { CliArgs, explain, parseCliArgs } from '../../schemas/io.ts';

const empty = mkdtempSync(join(tmpdir(), 'perennial-cli-'));
const saved = { ...process.env };
beforeEach(() => {
  for (const k of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'PERENNIAL_TASK_QUEUE']) delete process.env[k];
  process.env.PERENNIAL_DATA_DIR = empty;
});
afterAll(() => {
  process.env = saved;
  rmSync(empty, { recursive: true, force: true });
});

/** Runs the CLI in-process with no stack; returns its exit code and everything it printed to stderr. */
async function cli(...args: string[]) {
  const err: string[] = [];
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (err.push(String(chunk)), true));
  process.exitCode = undefined;
  try {
    const code = await main(['node', 'perennial', ...args]);
    return { code, err: err.join('\n') };
  } finally {
    error.mockRestore();
    log.mockRestore();
    write.mockRestore();
    process.exitCode = undefined;
  }
}

// [arguments, what the message must say]
const answered: [string[], RegExp][] = [
  [['rollback', 'support', '--reason', 'x'], /required option '--to <version>' not specified/],
  [['lineage', 'support@1', '--depth', 'abc'], /--depth takes a whole number, got "abc"/],
  [['lineage', '../x'], /expected <line>@<version> or <line>@<channel>, got "\.\.\/x"/],
  [['verify', '../../etc'], /expected <line> or <line>@<version>, got "\.\.\/\.\.\/etc"/],
  [['audit', 'log', '--limit', 'lots'], /--limit takes a whole number, got "lots"/],
  [['schedule', 'support', '--every', '5x'], /--every takes a number and a unit \(s, m, h, d\), e\.g\. 30m; got "5x"/],
  [['schedule', 'support'], /give exactly one of --every <interval> or --cron <expression>/],
  [['app', 'bind', 'helpdesk', 'support'], /expected <line>@<channel>.*got "support"/],
  [['app', 'bind', 'helpdesk', 'support@stable', '--policy', 'sometimes'], /--policy.* follow or hold/],
  [['sample', '../x@1', 'hello'], /expected <line>@<version> or <line>@<channel>/],
  [['drop'], /missing required argument 'line'/],
  [['frobnicate'], /unknown command 'frobnicate'/],
];

// Each of these needs the stack, so a bad argument must be caught before the command reaches for it.
const connectsFirst: [string[], RegExp][] = [
  [['rollback', 'support', '--to', 'abc', '--reason', 'x'], /--to: a version number is a whole number/],
  [['approve', 'support', 'v3'], /<version>: a version number is a whole number/],
  [['rollback', '../etc', '--to', '1', '--reason', 'x'], /<line>: a line name is 1-63 lowercase letters/],
  [['drop', '../etc', '/tmp/x.jsonl'], /<line>: a line name is 1-63 lowercase letters/],
  [['drop', 'support', '/tmp/x.jsonl', '--recipe', '{"steps": -1}'], /--recipe.*steps/],
  [['drop', 'support', '/tmp/x.jsonl', '--recipe', '{steps: 400}'], /--recipe: not valid JSON/],
  [['line', 'create', '../x', '--kind', 'foundation'], /<name>: a line name is 1-63 lowercase letters/],
  [['line', 'create', 'x', '--kind', 'sideways'], /--kind: the kind is foundation or application/],
  [['line', 'create', 'x', '--kind', 'foundation', '--steps', 'many'], /--steps is a whole number/],
  [['line', 'create', 'x', '--kind', 'foundation', '--gate', '{"maxRegresion":{"loss":0.02}}'], /--gate: .*maxRegresion/],
  [['versions', 'Support!'], /<line>: a line name is 1-63 lowercase letters/],
  [['status', '../x'], /<line>: a line name is 1-63 lowercase letters/],
  [['app', 'bind', '../helpdesk', 'support@stable'], /<app>: an? application name is 1-63 lowercase letters/],
  [['sample', 'support@1', 'hi', '--temperature', 'hot'], /--temperature: a temperature is a number/],
  [['report-regression', '../x', '--reason', 'r'], /<line>: a line name is 1-63 lowercase letters/],
  [['watch', '/tmp', '--line', '../x'], /--line: a line name is 1-63 lowercase letters/],
];

describe('the CLI at its boundary', () => {
  it.each(answered)('answers %j at once with exit 2 and what is wrong', async (args, message) => {
    const r = await cli(...args);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/no perennial stack is running/);
    expect(r.code).toBe(2);
  });

  // These commands connect to Temporal or PostgreSQL; each validates with CliArgs (schemas/io.ts) first.
  it.each(connectsFirst)('answers %j at once with exit 2 and what is wrong', async (args, message) => {
    const r = await cli(...args);
    expect(r.err).toMatch(message);
    expect(r.code).toBe(2);
  });

  it('has schemas that give those answers (for the commands to call first)', () => {
    const problem = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        if (err instanceof ZodError) return explain(err, { names: true }); // as scripts/cli.ts answers its user
        throw err;
      }
      throw new Error('accepted');
    };
    const rollback = { line: 'support', reason: 'x', actor: 'me', channel: 'stable' };
    expect(problem(() => parseCliArgs(CliArgs.rollback, { ...rollback, to: 'abc' }))).toBe('--to: a version number is a whole number from 1, like 3');
    expect(problem(() => parseCliArgs(CliArgs.rollback, { ...rollback, to: '0' }))).toBe('--to: a version number is at least 1');
    expect(problem(() => parseCliArgs(CliArgs.rollback, { ...rollback, to: '1', line: '../etc' }, { line: '<line>' }))).toMatch(
      /^<line>: a line name is 1-63 lowercase letters, digits and dashes/,
    );
    expect(parseCliArgs(CliArgs.rollback, { ...rollback, to: ' 7 ' })).toMatchObject({ to: 7 });
    expect(problem(() => parseCliArgs(CliArgs.review, { line: 'support', version: 'v3', actor: 'me' }, { version: '<version>' }))).toBe(
      '<version>: a version number is a whole number from 1, like 3',
    );
    const drop = { line: 'support', file: '/tmp/x.jsonl' };
    expect(problem(() => parseCliArgs(CliArgs.drop, { ...drop, recipe: '{steps: 400}' }))).toMatch(/^--recipe: not valid JSON: \{steps: 400\}/);
    expect(problem(() => parseCliArgs(CliArgs.drop, { ...drop, recipe: '{"steps": -1}' }))).toMatch(/^--recipe\.steps: /);
    expect(problem(() => parseCliArgs(CliArgs.drop, { ...drop, recipe: '{"stpes": 400}' }))).toMatch(/^--recipe: .*stpes/);
    expect(parseCliArgs(CliArgs.drop, { ...drop, recipe: '{"steps": 400}' }).recipe).toEqual({ steps: 400 });
    const line = { name: 'x', kind: 'foundation', canaryWindow: '0s', actor: 'me' };
    expect(problem(() => parseCliArgs(CliArgs.lineCreate, { ...line, kind: 'sideways' }))).toBe('--kind: the kind is foundation or application');
    expect(problem(() => parseCliArgs(CliArgs.lineCreate, { ...line, steps: 'many' }))).toBe('--steps: --steps is a whole number from 1, like 3');
    expect(problem(() => parseCliArgs(CliArgs.lineCreate, { ...line, canaryWindow: '5 minutes' }))).toBe('--canary-window: a duration like 30s, 5m or 2h');
    expect(problem(() => parseCliArgs(CliArgs.appBind, { app: 'helpdesk', target: 'support', policy: 'follow', actor: 'me' }, { target: '<target>' }))).toBe(
      '<target>: expected <line>@<channel>, like support@stable; got "support"',
    );
    expect(problem(() => parseCliArgs(CliArgs.sample, { ref: 'support@1', prompt: 'hi', temperature: 'hot', maxTokens: '80', seed: '1' }))).toBe(
      '--temperature: a temperature is a number from 0 (greedy) up, like 0.8',
    );
  });
});
