/** `perennial audit verify|seal|export|log|key`: the hash-chained audit log and its signed Merkle roots. */
import type { Command } from 'commander';
import { ROOTS_FILE } from '../../registry/audit.ts';
import { openRegistry, output, UserError } from './context.ts';

function positiveInt(flag: string) {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new UserError(`${flag} takes a whole number, got "${value}"`, 2);
    return Number(value);
  };
}

export function register(program: Command) {
  const audit = program.command('audit').description('verify, sign and read the append-only audit log');

  audit
    .command('verify')
    .description('recompute the hash chain and check every signed root; exit 1 naming the first entry that breaks')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { registry, close } = openRegistry();
      try {
        const result = await registry.verifyAudit();
        output(o.json, result, () => {
          const unsigned =
            result.unsignedRoots > 0
              ? `\n  note: ${result.unsignedRoots} row(s) of audit_roots carry no valid signature and were passed over (not written by a sealer with the installation key)`
              : '';
          if (result.ok) {
            console.log(
              `audit log intact: ${result.entries} entries, chain unbroken, ${result.roots} signed root(s) match` +
                (result.roots === 0 ? ' (none exported yet: perennial audit export)' : '') +
                unsigned,
            );
            return;
          }
          const first = result.firstBad!;
          // A failed seal alone leaves the entries whole but unanchored: say so rather than "broken".
          const label = result.problems.every((p) => p.kind === 'seal') ? 'audit log NOT SEALED' : 'audit log BROKEN';
          console.log(`${label}${first.seq === null ? '' : ` at entry ${first.seq}`}: ${first.reason}`);
          for (const p of result.problems.filter((p) => p !== first)) console.log(`  also: ${p.reason}`);
          if (unsigned) console.log(unsigned.slice(1));
        });
        if (!result.ok) process.exitCode = 1;
      } finally {
        await close();
      }
    });

  audit
    .command('seal')
    .description("sign the log's Merkle root from the last root and the entries since (what the loop does after every cycle); repairs a torn last line of roots.jsonl first")
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { registry, close } = openRegistry();
      try {
        // A failure is recorded in the audit log before it is thrown, for `perennial status` and `audit verify`.
        const sealed = await registry.sealAuditLog().catch((err: Error) => {
          throw new UserError(`seal failed: ${err.message}`);
        });
        output(o.json, sealed, () => {
          const r = sealed.repaired;
          if (r)
            console.log(
              `repaired ${ROOTS_FILE}: its last line was torn at byte ${r.offset} of ${r.size} and was ${r.action === 'truncated' ? 'cut off' : 'completed'} (audit entry ${r.seq} keeps the torn bytes)`,
            );
          console.log(`signed root of ${sealed.root.treeSize} entries (${sealed.hashed} hashed since the last root): ${sealed.root.rootHash} -> ${sealed.file}`);
        });
      } finally {
        await close();
      }
    });

  audit
    .command('export')
    .description("sign the log's Merkle root with the installation key and append it to <data>/audit/roots.jsonl")
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { registry, close } = openRegistry();
      try {
        const exported = await registry.exportAuditRoot().catch((err: Error) => {
          throw new UserError(err.message);
        });
        output(o.json, exported, () =>
          console.log(
            `signed root of ${exported.root.treeSize} entries: ${exported.root.rootHash} (key ${exported.root.keyId.slice(0, 16)}) -> ${exported.file}`,
          ),
        );
      } finally {
        await close();
      }
    });

  audit
    .command('log')
    .description('print audit entries in order')
    .option('--after <seq>', 'start after this entry', positiveInt('--after'), 0)
    .option('--limit <n>', 'at most this many entries', positiveInt('--limit'), 100)
    .option('--subject <subject>', 'only entries about this subject (e.g. support@stable)')
    .option('--json', 'print JSON')
    .action(async (o: { after: number; limit: number; subject?: string; json?: boolean }) => {
      const { registry, close } = openRegistry();
      try {
        // One past the page, to say when the log goes on (a page that ends silently reads as the end of the log).
        const page = await registry.listAudit({ after: o.after, limit: o.limit + 1, ...(o.subject ? { subject: o.subject } : {}) });
        const entries = page.slice(0, o.limit);
        output(o.json, entries, () => {
          for (const e of entries)
            console.log(
              `${String(e.seq).padStart(6)} ${e.at.toISOString()} ${e.actor.padEnd(14)} ${e.action.padEnd(18)} ${e.subject} ${JSON.stringify(e.details)}`,
            );
          if (page.length > entries.length)
            console.log(`(more entries follow: perennial audit log --after ${entries.at(-1)!.seq}${o.subject ? ` --subject ${o.subject}` : ''})`);
        });
      } finally {
        await close();
      }
    });

  audit
    .command('key')
    .description('print the installation public key (PEM) and its key id, for third parties who verify signatures')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { registry, close } = openRegistry();
      try {
        const key = { keyId: registry.keys.keyId, publicKeyPem: registry.keys.publicKeyPem };
        output(o.json, key, () => console.log(`key id ${key.keyId}\n${key.publicKeyPem.trimEnd()}`));
      } finally {
        await close();
      }
    });
}
