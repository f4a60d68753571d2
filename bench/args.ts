/**
 * Command-line flags of the benchmark and fault-run scripts (node:util parseArgs): a flag the script does not take,
 * or a value where none goes, ends the run with one line naming it and the script's usage (exit 2), as the CLI
 * does, instead of parseArgs' stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** `script` is the npm script's name (`bench:rl`). */
export function scriptArgs<T extends ParseArgsConfig>(script: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    const flags = Object.entries(config.options ?? {})
      .map(([name, o]) => `[--${name}${o.type === 'string' ? ' <value>' : ''}]`)
      .join(' ');
    process.stderr.write(`${script}: ${(err as Error).message.split('\n')[0]}\nusage: npm run ${script} -- ${flags}\n`);
    process.exit(2);
  }
}
