#!/usr/bin/env node
// Applies small, idempotent fixes to installed dependencies that have no fixed release yet. Runs as part of
// npm's postinstall; each fix checks the exact code it replaces and says what it did, so a newer release of
// the dependency (with the fix, or with changed code) is left untouched and reported.
//
// postgres 3.4.x (porsager/postgres#1154, #1208): when a transaction's connection is cut (a PostgreSQL
// restart, a failover, pg_terminate_backend), the driver still sends the ROLLBACK on it:
// - the write is flushed from a setImmediate after the socket was set to null, and `socket.write` throws a
//   TypeError out of the timer: an uncaught exception that ends the whole process (a worker, the CLI);
// - the ROLLBACK never completes, and the pool parks the connection where no query reaches it again, so a
//   pool of two is wedged after two cuts.
// The fixes reject a query on a closed connection at once with CONNECTION_CLOSED (the pool then reconnects
// it for the next query) and drop a write to a closed socket. test/stack/chaos-driver.test.ts checks both.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const fixes = [
  {
    name: 'query on a closed connection',
    mark: '/* perennial: query on a closed connection */',
    before: `  function execute(q) {
    if (terminated)
      return queryError(q, Errors.connection('CONNECTION_DESTROYED', options))
`,
    after: (mark) => `  function execute(q) {
    if (terminated)
      return queryError(q, Errors.connection('CONNECTION_DESTROYED', options))

    if (!socket) ${mark}
      return queryError(q, Errors.connection('CONNECTION_CLOSED', options)), true
`,
  },
  {
    name: 'write after close',
    mark: '/* perennial: write after close */',
    before: `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`,
    after: (mark) => `  function nextWrite(fn) {
    if (!socket) { ${mark}
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      fn && fn(new Error('write after the connection closed'))
      return false
    }
    const x = socket.write(chunk, fn)`,
  },
];

let problems = 0;
for (const flavour of ['src', 'cjs/src', 'cf/src']) {
  const file = join(root, 'node_modules', 'postgres', flavour, 'connection.js');
  if (!existsSync(file)) continue;
  let code = readFileSync(file, 'utf8');
  const applied = [];
  for (const fix of fixes) {
    if (code.includes(fix.mark)) continue;
    if (!code.includes(fix.before)) {
      problems++;
      console.warn(`perennial: postgres ${flavour}/connection.js has changed; the "${fix.name}" fix was not applied (see porsager/postgres#1154)`);
      continue;
    }
    code = code.replace(fix.before, fix.after(fix.mark));
    applied.push(fix.name);
  }
  if (applied.length) {
    writeFileSync(file, code);
    console.log(`perennial: patched postgres ${flavour}/connection.js (${applied.join(', ')}; porsager/postgres#1154)`);
  }
}
if (problems) console.warn(`perennial: ${problems} dependency fix(es) not applied`);
