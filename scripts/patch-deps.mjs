#!/usr/bin/env node
// Applies small, idempotent fixes to installed dependencies that have no fixed release yet. Runs as part of
// npm's postinstall; each fix checks the exact code it replaces and says what it did, so a newer release of
// the dependency (with the fix, or with changed code) is left untouched and reported.
//
// postgres 3.4.x (porsager/postgres#1154, #1208): when a connection closes in the middle of a transaction,
// the driver's ROLLBACK is flushed from a setImmediate after the socket has been set to null, and
// `socket.write` throws a TypeError out of the timer: an uncaught exception that ends the whole process (a
// worker, the CLI). The fix drops a write to a closed connection (its caller already got CONNECTION_CLOSED).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const MARK = '/* perennial: write after close */';
const BEFORE = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const AFTER = `  function nextWrite(fn) {
    if (!socket) { ${MARK}
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      fn && fn(new Error('write after the connection closed'))
      return false
    }
    const x = socket.write(chunk, fn)`;

let problems = 0;
for (const flavour of ['src', 'cjs/src', 'cf/src']) {
  const file = join(root, 'node_modules', 'postgres', flavour, 'connection.js');
  if (!existsSync(file)) continue;
  const code = readFileSync(file, 'utf8');
  if (code.includes(MARK)) continue;
  if (!code.includes(BEFORE)) {
    problems++;
    console.warn(`perennial: postgres ${flavour}/connection.js has changed; the write-after-close fix was not applied (check porsager/postgres#1154)`);
    continue;
  }
  writeFileSync(file, code.replace(BEFORE, AFTER));
  console.log(`perennial: patched postgres ${flavour}/connection.js (write after close, porsager/postgres#1154)`);
}
process.exitCode = 0;
if (problems) console.warn(`perennial: ${problems} dependency fix(es) not applied`);
