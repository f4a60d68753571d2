/**
 * Which lines a foundation upgrade reaches, checked before anything starts: the CLI calls it before it starts the
 * upgrade workflow, and the workflow's first activity calls it again (the registry may have changed in between).
 */
import { InvalidInputError, NotFoundError } from '../schemas/contracts/errors.ts';
import type { Registry } from './registry.ts';

type Reads = Pick<Registry, 'getLine' | 'listLines' | 'getChannels' | 'listVersions'>;

/**
 * The application lines to upgrade onto `foundation@version`: the named ones (manual), or every line built on
 * `foundation` whose policy is `auto` and whose stable version stands on an older foundation version (a line with
 * no stable version has nothing to transfer; one already on this version nothing to gain; none when `foundation`
 * is an application line). Throws NotFoundError for a line or version that does not exist and
 * InvalidInputError for a line that is not a foundation, a version that is not its stable one, or a named line
 * that is not an application line, whose policy is `off`, or whose model cannot teach one of the foundation's shape
 * (another vocabulary, or a shorter context).
 */
export async function planUpgrade(registry: Reads, input: { foundation: string; version: number; lines?: string[] }): Promise<{ lines: string[] }> {
  const f = await registry.getLine(input.foundation);
  // Asked by a line workflow after each promotion (no lines named): an application line has nothing to upgrade.
  if (f.kind !== 'foundation' && !input.lines) return { lines: [] };
  if (f.kind !== 'foundation') throw new InvalidInputError(`${input.foundation} is an ${f.kind} line, not a foundation line; an upgrade goes to a foundation version`);
  const versions = (await registry.listVersions(input.foundation)).map((v) => v.version);
  if (!versions.includes(input.version)) throw new NotFoundError(`${input.foundation}@${input.version}`);
  const stable = (await registry.getChannels(input.foundation)).find((c) => c.channel === 'stable')?.version ?? null;
  if (stable !== input.version) {
    throw new InvalidInputError(
      `${input.foundation}@${input.version} is not stable (${stable === null ? 'the line has no stable version' : `stable is ${input.foundation}@${stable}`}); an upgrade starts from a stable foundation version`,
    );
  }
  if (input.lines) {
    for (const name of input.lines) {
      const line = await registry.getLine(name);
      if (line.kind !== 'application') throw new InvalidInputError(`${name} is a foundation line; only application lines are upgraded`);
      if (line.upgradePolicy === 'off') throw new InvalidInputError(`${name} has upgrade policy off`);
      // The old model is the teacher: its soft targets must cover every position and token the new model trains on.
      const teacher = line.modelConfig as { context?: number; vocabSize?: number };
      const student = f.modelConfig as { context?: number; vocabSize?: number };
      if (teacher.vocabSize !== student.vocabSize || (teacher.context ?? 0) < (student.context ?? 0)) {
        throw new InvalidInputError(
          `${name} (context ${teacher.context}, vocabulary ${teacher.vocabSize}) cannot teach a model of ${input.foundation}'s shape (context ${student.context}, vocabulary ${student.vocabSize}): distillation needs the same vocabulary and a teacher context at least the new model's`,
        );
      }
    }
    return { lines: [...input.lines] };
  }
  const all = (await registry.listLines()).filter((l) => l.kind === 'application' && l.foundationLine === input.foundation && l.upgradePolicy === 'auto');
  const due = await Promise.all(
    all.map(async (l) => {
      const stable = (await registry.getChannels(l.name)).find((c) => c.channel === 'stable')?.version ?? null;
      if (stable === null) return false;
      const on = (await registry.listVersions(l.name)).find((v) => v.version === stable)?.foundationVersion;
      return !(on && on.line === input.foundation && on.version >= input.version);
    }),
  );
  return { lines: all.filter((_, i) => due[i]).map((l) => l.name) };
}
