/**
 * Overrides (`--gate`, `--recipe`) are laid over the defaults at every depth and validated whole; a bound
 * given as null is removed. Version lists in refusals read as ranges.
 */
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { numberRanges } from '../../activities/release.ts';
import { DEFAULT_GATE_RULES, DEFAULT_RECIPE } from '../../schemas/defaults.ts';
import { CliArgs, explain, GateRules, mergeDeep, parseCliArgs, Recipe } from '../../schemas/io.ts';
import { autoRecipeArg, describeSearch, formatRules } from '../../scripts/commands/line.ts';

describe('mergeDeep', () => {
  it('changes only the keys an override names, at any depth', () => {
    expect(mergeDeep(DEFAULT_GATE_RULES, { maxRegression: { loss: 0.02 } })).toEqual({ ...DEFAULT_GATE_RULES, maxRegression: { loss: 0.02, exactMatch: 0.1 } });
    expect(mergeDeep(DEFAULT_GATE_RULES, { suites: { facts: { floors: { exactMatch: 0.5 } } } }).suites).toEqual({ facts: { floors: { exactMatch: 0.5 } } });
    expect(mergeDeep(DEFAULT_RECIPE, { steps: 400 })).toEqual({ ...DEFAULT_RECIPE, steps: 400 });
    expect(mergeDeep(DEFAULT_RECIPE, undefined)).toEqual(DEFAULT_RECIPE);
  });

  it('removes a key given as null and leaves its inputs alone', () => {
    const before = structuredClone(DEFAULT_GATE_RULES);
    expect(mergeDeep(DEFAULT_GATE_RULES, { floors: { loss: null } }).floors).toEqual({ exactMatch: 0 });
    expect(DEFAULT_GATE_RULES).toEqual(before);
  });

  it('validates the merged rules under the option the user typed', () => {
    const problem = (gate: string) => {
      try {
        const o = parseCliArgs(CliArgs.lineCreate, { name: 'x', kind: 'foundation', canaryWindow: '0s', actor: 'me', gate });
        parseCliArgs(GateRules, mergeDeep(DEFAULT_GATE_RULES, o.gate), {}, '--gate');
      } catch (err) {
        if (err instanceof ZodError) return explain(err, { names: true }); // as scripts/cli.ts answers its user
        throw err;
      }
      return 'accepted';
    };
    expect(problem('{"maxRegression":{"loss":0.02}}')).toBe('accepted');
    expect(problem('{"maxRegresion":{"loss":0.02}}')).toMatch(/^--gate: .*maxRegresion/);
    expect(problem('{"maxRegression":{"los":0.02}}')).toMatch(/^--gate\.maxRegression: .*los/);
    expect(problem('{"floors":{"loss":"low"}}')).toMatch(/^--gate\.floors\.loss: /);
  });
});

describe('numberRanges', () => {
  it('reads like a person writes it', () => {
    expect(numberRanges([1, 2, 3, 4, 5])).toBe('1-5');
    expect(numberRanges([7, 1, 2, 3])).toBe('1-3, 7');
    expect(numberRanges([4])).toBe('4');
    expect(numberRanges([])).toBe('');
  });
});

describe('recipe auto in words', () => {
  it('names every search setting, with the defaults the search applies to those not set', () => {
    const rules = GateRules.parse(DEFAULT_GATE_RULES);
    expect(formatRules(rules, { ...DEFAULT_RECIPE, search: {} })).toContain(
      "recipe search: auto (budget 1.5x the recipe's training FLOPs, no wall-time limit, 4 trials in the first bracket, margin 0, an update that forgot tried again with more replay, an update judged at 8.3%, 16.7%, 33.3% of its horizon and stopped when below every passing one of the line's record (at least 2) by more than 0.2): each cycle",
    );
    expect(describeSearch({ budgetFlops: 3e12, budgetWallMs: 60_000, width: 2, margin: 0.01, repair: false, stopEarly: false })).toBe(
      'budget 3.00e+12 training FLOPs, at most 60000 ms, 2 trials in the first bracket, margin 0.01, no repair of an update that forgot, no early stop',
    );
    expect(describeSearch({ stopEarly: true })).toBe(describeSearch({}));
    expect(() => Recipe.parse({ ...DEFAULT_RECIPE, search: { stopEarly: 'yes' } })).toThrow(
      /search\.stopEarly is true, false or an object of slack, at and minPassing/,
    );
    expect(describeSearch({ stopEarly: { slack: 0.1, at: [0.25] } })).toContain(
      "an update judged at 25% of its horizon and stopped when below every passing one of the line's record (at least 2) by more than 0.1",
    );
    expect(formatRules(rules, DEFAULT_RECIPE)).not.toContain('recipe search');
  });

  it("prints an application line's transfer recipe field by field (line show printed [object Object])", () => {
    const shown = formatRules(GateRules.parse(DEFAULT_GATE_RULES), { ...DEFAULT_RECIPE, transfer: { steps: 1000, distillWeight: 0.5 } });
    expect(shown).not.toContain('[object Object]');
    expect(shown).toMatch(/recipe: .*transfer \{steps 1000, distillWeight 0\.5\}/);
  });

  it("takes the budget in FLOPs or as a multiple of the recipe's, and says which", () => {
    expect(autoRecipeArg('auto', undefined)).toBe('{"search":{}}');
    expect(autoRecipeArg('auto', '2e12')).toBe('{"search":{"budgetFlops":2000000000000}}');
    expect(autoRecipeArg('auto', '2x')).toBe('{"search":{"budgetFactor":2}}');
    expect(autoRecipeArg('auto', '0.75X')).toBe('{"search":{"budgetFactor":0.75}}');
    expect(describeSearch({ budgetFactor: 2 })).toMatch(/^budget 2x the recipe's training FLOPs, /);
    // budgetFlops wins when both are set, as in the search.
    expect(describeSearch({ budgetFactor: 2, budgetFlops: 1e12 })).toMatch(/^budget 1\.00e\+12 training FLOPs, /);
    for (const bad of ['0x', '-1', 'x', 'lots', '101x'])
      expect(() => autoRecipeArg('auto', bad), bad).toThrow(/--search-budget is a positive number of FLOPs, like 2e12, or a multiple .* like 2x; got/);
    expect(() => autoRecipeArg('fixed', '2x')).toThrow('--search-budget goes with --recipe auto');
    expect(() => Recipe.parse({ ...DEFAULT_RECIPE, search: { budgetFactor: 0 } })).toThrow(/search\.budgetFactor is a positive multiple/);
    // A JSON recipe that writes the CLI's form is told the difference.
    expect(() => Recipe.parse({ ...DEFAULT_RECIPE, search: { budgetFactor: '2x' } })).toThrow(/like 2 \(a number, not /);
    expect(() => Recipe.parse({ ...DEFAULT_RECIPE, search: { budgetFlops: 'lots' } })).toThrow(/search\.budgetFlops is a positive number of FLOPs/);
  });
});
