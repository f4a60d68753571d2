/**
 * The drop-folder watcher: sends each new file in a folder to a line exactly once, also across restarts.
 * A file is sent once its size and mtime have held still for `settleMs` (a writer may still be copying it),
 * and recorded in a ledger (JSONL, fsynced) before the next scan; a file sent but not yet recorded when the
 * watcher died is sent again on restart and deduplicated by its content digest in the line workflow.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export interface WatcherOptions {
  dir: string;
  /** The line every file goes to; without it, each subfolder of `dir` is a line's folder. */
  line?: string;
  ledgerPath: string;
  /** Sends one file; `note`, when given, is logged after the send (e.g. that the line had this content already). */
  send: (line: string, path: string) => Promise<{ digest: string; note?: string }>;
  settleMs?: number;
  log?: (line: string) => void;
}

interface LedgerEntry {
  line: string;
  path: string;
  digest: string;
  size: number;
  mtimeMs: number;
  sentAt: string;
}

const IGNORED = /(^\.|\.tmp$|\.part$|\.partial$|~$|\.swp$)/;

export class DropWatcher {
  private readonly sent = new Set<string>();
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  private readonly opts: Required<Omit<WatcherOptions, 'line'>> & { line?: string };

  constructor(opts: WatcherOptions) {
    this.opts = { settleMs: 1000, log: () => {}, ...opts, dir: resolve(opts.dir) };
    if (existsSync(this.opts.ledgerPath)) {
      for (const row of readFileSync(this.opts.ledgerPath, 'utf8').split('\n')) {
        if (!row.trim()) continue;
        try {
          const e = JSON.parse(row) as LedgerEntry;
          this.sent.add(this.key(e.line, e.path, e.size, e.mtimeMs));
        } catch {
          // A torn last line from a crash mid-append: that file is sent again and deduplicated by digest.
        }
      }
    }
  }

  private key(line: string, path: string, size: number, mtimeMs: number) {
    return `${line}\u0000${path}\u0000${size}\u0000${mtimeMs}`;
  }

  /** The (line, file) pairs in the folder now. */
  private async candidates(): Promise<{ line: string; path: string }[]> {
    const list = async (dir: string) =>
      (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !IGNORED.test(e.name)).map((e) => join(dir, e.name));
    if (this.opts.line) return (await list(this.opts.dir)).map((path) => ({ line: this.opts.line!, path }));
    const out: { line: string; path: string }[] = [];
    for (const sub of await readdir(this.opts.dir, { withFileTypes: true })) {
      if (!sub.isDirectory() || !/^[a-z][a-z0-9-]{0,62}$/.test(sub.name)) continue;
      for (const path of await list(join(this.opts.dir, sub.name))) out.push({ line: sub.name, path });
    }
    return out.sort((a, b) => a.path.localeCompare(b.path));
  }

  /** One pass over the folder: sends every settled, unsent file. Returns how many were sent. */
  async scanOnce(now = Date.now()): Promise<number> {
    let count = 0;
    for (const { line, path } of await this.candidates()) {
      const st = await stat(path).catch(() => null);
      if (!st) continue;
      const key = this.key(line, path, st.size, st.mtimeMs);
      if (this.sent.has(key)) continue;
      const prev = this.seen.get(path);
      if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
        this.seen.set(path, { size: st.size, mtimeMs: st.mtimeMs, since: now });
        if (this.opts.settleMs > 0) continue;
      } else if (now - prev.since < this.opts.settleMs) continue;
      const { digest, note } = await this.opts.send(line, path);
      this.record({ line, path, digest, size: st.size, mtimeMs: st.mtimeMs, sentAt: new Date().toISOString() });
      this.sent.add(key);
      this.seen.delete(path);
      this.opts.log(`sent ${path} -> ${line} (${digest.slice(0, 12)})${note ? `: ${note}` : ''}`);
      count++;
    }
    return count;
  }

  private record(entry: LedgerEntry) {
    mkdirSync(dirname(this.opts.ledgerPath), { recursive: true });
    const fd = openSync(this.opts.ledgerPath, 'a');
    try {
      appendFileSync(fd, JSON.stringify(entry) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Scans every `intervalMs` until `signal` aborts. */
  async run(signal: AbortSignal, intervalMs = 1000): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.scanOnce();
      } catch (err) {
        this.opts.log(`scan failed (retrying): ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/** Where a watcher of `dir` keeps its ledger: under the data folder, one file per watched folder. */
export function ledgerFor(dataDir: string, dir: string): string {
  return join(dataDir, 'watch', `${createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 16)}.jsonl`);
}
