/** `perennial verify [line[@version]]`: re-hash every stored file and check every manifest signature. Exit 0 intact, 1 not. */
import type { Command } from 'commander';
import { openRegistry, output, UserError } from './context.ts';

/** Parses `line`, `line@version` or nothing into what to verify. */
export function parseTarget(target: string | undefined): { line?: string; version?: number } {
  if (target === undefined) return {};
  const m = /^([a-z][a-z0-9_-]{0,62})(?:@(\d+))?$/.exec(target);
  if (!m) throw new UserError(`expected <line> or <line>@<version>, got "${target}"`, 2);
  return { line: m[1]!, ...(m[2] !== undefined ? { version: Number(m[2]) } : {}) };
}

export function register(program: Command) {
  program
    .command('verify [target]')
    .description(
      're-hash the files of every version (or of <line> / <line>@<version>), the drops and checkpoints each depends on, and check their signed manifests; exit 1 naming each one at fault',
    )
    .option('--json', 'print JSON')
    .action(async (target: string | undefined, o: { json?: boolean }) => {
      const { line, version } = parseTarget(target);
      const { registry, close } = openRegistry();
      try {
        const result = await registry.verifyArtifacts(line, version);
        output(o.json, result, () => {
          for (const p of result.problems) console.log(`FAIL ${p.line}@${p.version} ${p.file}: ${p.reason}${p.path ? ` (${p.path})` : ''}`);
          const scope = target ?? 'all versions';
          console.log(
            result.ok
              ? `verified ${scope}: ${result.checked} version(s), ${result.files} file(s), every hash and signature intact (key ${registry.keys.keyId.slice(0, 16)})`
              : `verification of ${scope} FAILED: ${result.problems.length} problem(s) in ${result.checked} version(s)`,
          );
        });
        if (!result.ok) process.exitCode = 1;
      } finally {
        await close();
      }
    });
}
