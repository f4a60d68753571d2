/**
 * Ingest: read a drop file, check it is the content that was signalled, validate every record, store it
 * content-addressed, record it, and register its suites. Bad input is kept in quarantine with its reason
 * and recorded, then reported as a non-retryable InvalidDataError naming the file and the line.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { DropRequest } from '../schemas/io.ts';
import { ErrorType } from '../workflows/options.ts';
import { DropFormatError, parseDrop, sha256Hex } from './drops.ts';
import type { ActivityDeps } from './deps.ts';
import { suitesOfDrop } from './suites.ts';
import type { IngestResult, SuiteRef } from './types.ts';

export interface QuarantineRecord {
  line: string;
  digest: string;
  file: string;
  reason: string;
  at: string;
}

export function ingestActivities(deps: ActivityDeps) {
  const quarantineRoot = join(deps.dataDir, 'quarantine');

  /** Keeps the bytes (when there are any) and the reason under quarantine/<digest>/. Idempotent. */
  async function quarantine(record: QuarantineRecord, bytes: Uint8Array | undefined): Promise<string> {
    const dir = join(quarantineRoot, record.digest);
    await mkdir(dir, { recursive: true });
    if (bytes) await atomicWrite(join(dir, 'content'), bytes);
    await atomicWrite(join(dir, 'reason.json'), Buffer.from(JSON.stringify(record, null, 2) + '\n'));
    return dir;
  }

  async function reject(line: string, req: DropRequest, digest: string, bytes: Uint8Array | undefined, reason: string): Promise<never> {
    const dir = await quarantine({ line, digest, file: req.path, reason, at: new Date().toISOString() }, bytes);
    await deps.registry.recordDrop({
      line,
      digest,
      source: req.source,
      status: 'quarantined',
      counts: { records: 0, train: 0, heldOut: 0, probes: 0 },
      reason,
      storedPath: dir,
    });
    throw ApplicationFailure.nonRetryable(reason, ErrorType.InvalidData, { line, digest, file: req.path, quarantine: dir });
  }

  return {
    /** Ingests one drop for `line`: validate, store, record, register suites. Idempotent by (line, digest). */
    async ingestDrop(input: { line: string; request: DropRequest; key: string }): Promise<IngestResult> {
      const { line, request } = input;
      const previous = await deps.registry.getDrop(line, request.digest);
      if (previous) {
        if (previous.status === 'accepted' && previous.ingestKey === input.key) return accepted(line, request, previous);
        return { status: 'duplicate', digest: request.digest, previousStatus: previous.status };
      }
      let bytes: Uint8Array;
      try {
        bytes = await readFile(request.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why =
          code === 'ENOENT'
            ? 'the file does not exist'
            : code === 'EISDIR'
              ? 'the path is a folder, not a file'
              : `the file cannot be read (${code ?? (err as Error).message})`;
        return reject(line, request, request.digest, undefined, `${request.path}: ${why}`);
      }
      const digest = sha256Hex(bytes);
      if (digest !== request.digest) {
        return reject(
          line,
          request,
          request.digest,
          bytes,
          `${request.path}: the file changed after it was sent (sent ${request.digest.slice(0, 12)}, read ${digest.slice(0, 12)}); send it again`,
        );
      }
      let parsed;
      try {
        parsed = parseDrop(bytes, request.path);
      } catch (err) {
        if (err instanceof DropFormatError) return reject(line, request, digest, bytes, err.message);
        throw err;
      }
      const stored = await deps.store.put(bytes);
      const suites = suitesOfDrop(line, request.source, digest, parsed);
      await deps.registry.recordDrop({
        line,
        digest,
        source: request.source,
        status: 'accepted',
        counts: {
          records: parsed.train.length + parsed.heldOut.length + parsed.probes.length,
          train: parsed.train.length,
          heldOut: parsed.heldOut.length,
          probes: parsed.probes.length,
        },
        storedPath: deps.store.pathOf(stored),
        ingestKey: input.key,
      });
      for (const s of suites) await deps.registry.ensureSuite({ line, name: s.name, kind: s.kind, dataDigest: digest, dropDigest: digest });
      return { status: 'accepted', digest, counts: { train: parsed.train.length, heldOut: parsed.heldOut.length, probes: parsed.probes.length }, suites };
    },

    /** Stores a regression report's evidence file and returns the suites it defines (not added to the line). */
    async ingestEvidence(input: { line: string; path: string; digest: string }): Promise<SuiteRef[]> {
      const bytes = await readFile(input.path).catch((err: NodeJS.ErrnoException) => {
        throw ApplicationFailure.nonRetryable(`${input.path}: evidence cannot be read (${err.code})`, ErrorType.InvalidData);
      });
      if (sha256Hex(bytes) !== input.digest)
        throw ApplicationFailure.nonRetryable(`${input.path}: the evidence changed after it was sent`, ErrorType.InvalidData);
      let parsed;
      try {
        parsed = parseDrop(bytes, input.path);
      } catch (err) {
        if (err instanceof DropFormatError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidData);
        throw err;
      }
      await deps.store.put(bytes);
      // Evidence is evaluated whole: its text is all held out, it trains nothing.
      const all = { ...parsed, heldOut: [...parsed.heldOut, ...parsed.train], train: [] };
      const suites = suitesOfDrop(input.line, `evidence-${basename(input.path).replace(/[^A-Za-z0-9._-]/g, '_')}`, input.digest, all).map((s) => ({
        ...s,
        evidence: true,
      }));
      // Registered so results can be recorded; with no drop behind them they never join the line's gate.
      for (const s of suites) await deps.registry.ensureSuite({ line: input.line, name: s.name, kind: s.kind, dataDigest: input.digest });
      return suites;
    },
  };

  function accepted(line: string, request: DropRequest, row: { counts: { train: number; heldOut: number; probes: number } }): Promise<IngestResult> {
    return deps.drops.get(request.digest).then((parsed) => ({
      status: 'accepted' as const,
      digest: request.digest,
      counts: { train: row.counts.train, heldOut: row.counts.heldOut, probes: row.counts.probes },
      suites: suitesOfDrop(line, request.source, request.digest, parsed),
    }));
  }
}

async function atomicWrite(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes, { flush: true });
  await rename(tmp, path);
}
