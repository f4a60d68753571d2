/**
 * Which lines a foundation upgrade reaches, checked before anything starts: the CLI calls it before it starts the
 * upgrade workflow, and the workflow's first activity calls it again (the registry may have changed in between).
 */
import { InvalidInputError, NotFoundError } from '../schemas/contracts/errors.ts';
import type { Registry } from './registry.ts';
import type { UpgradePlan } from '../schemas/contracts/messages.ts';

type Reads = Pick<Registry, 'getLine' | 'listLines' | 'getChannels' | 'listVersions'>;

/**
 * Why the model of `line` cannot teach a model of `foundation`'s shape, or null when it can. The old model is the
 * teacher: its soft targets must cover every position and token the new model trains on (the same vocabulary, and a
 * context at least the new model's). One check for a named upgrade and the automatic plan, before anything starts.
 */
export function teacherShapeRefusal(line: { name: string; modelConfig: unknown }, foundation: { name: string; modelConfig: unknown }): string | null {
  const teacher = line.modelConfig as { context?: number; vocabSize?: number };
  const student = foundation.modelConfig as { context?: number; vocabSize?: number };
  if (teacher.vocabSize === student.vocabSize && (teacher.context ?? 0) >= (student.context ?? 0)) return null;
  return `${line.name} (context ${teacher.context}, vocabulary ${teacher.vocabSize}) cannot teach a model of ${foundation.name}'s shape (context ${student.context}, vocabulary ${student.vocabSize}): distillation needs the same vocabulary and a teacher context at least the new model's`;
}

/**
 * The application lines to upgrade onto `foundation@version`: the named ones (manual), or every line built on
 * `foundation` whose policy is `auto` and whose stable version stands on an older foundation version (a line with
 * no stable version has nothing to transfer; one already on this version or a later one nothing to gain; none when
 * `foundation` is an application line). The automatic plan says why each other dependent line is left out
 * (`skipped`), and refuses (`refused`, not in `lines`) a due line whose model cannot teach the foundation's shape.
 * Throws NotFoundError for a line or version that does not exist and InvalidInputError for a line that is not a
 * foundation, a version that is not its stable one, or a named line that is not an application line, whose policy
 * is `off`, or whose model cannot teach one of the foundation's shape.
 */
export async function planUpgrade(registry: Reads, input: { foundation: string; version: number; lines?: string[] }): Promise<Required<UpgradePlan>> {
  const f = await registry.getLine(input.foundation);
  // Asked by a line workflow after each promotion (no lines named): an application line has nothing to upgrade.
  if (f.kind !== 'foundation' && !input.lines) return { lines: [], skipped: [], refused: [] };
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
      const refusal = teacherShapeRefusal(line, f);
      if (refusal) throw new InvalidInputError(refusal);
    }
    return { lines: [...input.lines], skipped: [], refused: [] };
  }
  const target = `${input.foundation}@${input.version}`;
  const dependents = (await registry.listLines()).filter((l) => l.kind === 'application' && l.foundationLine === input.foundation);
  const notes = await Promise.all(
    dependents.map(async (l): Promise<{ skipped: string } | { refused: string } | null> => {
      if (l.upgradePolicy !== 'auto')
        return { skipped: `upgrade policy ${l.upgradePolicy}${l.upgradePolicy === 'manual' ? `: perennial upgrade ${l.name} --to ${target}` : ''}` };
      const stable = (await registry.getChannels(l.name)).find((c) => c.channel === 'stable')?.version ?? null;
      if (stable === null) return { skipped: 'no stable version to transfer from' };
      const on = (await registry.listVersions(l.name)).find((v) => v.version === stable)?.foundationVersion;
      if (on && on.line === input.foundation && on.version >= input.version)
        return { skipped: `${l.name}@${stable} stands on ${on.line}@${on.version}${on.version === input.version ? ' already' : `, past ${target}`}` };
      const refusal = teacherShapeRefusal(l, f);
      return refusal ? { refused: refusal } : null;
    }),
  );
  const plan: Required<UpgradePlan> = { lines: [], skipped: [], refused: [] };
  dependents.forEach((l, i) => {
    const note = notes[i];
    if (!note) plan.lines.push(l.name);
    else if ('refused' in note) plan.refused.push({ line: l.name, reason: note.refused });
    else plan.skipped.push({ line: l.name, reason: note.skipped });
  });
  return plan;
}
