/**
 * Ingest under bad input, on a real registry: fuzzed files, a file that changes while it is read, special
 * files (a pipe, /dev/zero, a folder, a link loop, a file over the size limit), the installation's own signing
 * key, and drop requests that no CLI would send (traversal digests, relative paths, wrong types). Each one is
 * accepted, or quarantined with a reason that names the file (and record); none hangs, crashes, copies a
 * secret, or writes outside the data folder's quarantine/.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_DROP_BYTES, sha256Hex } from '../../domain/drops.ts';
import { ingestActivities } from '../../activities/ingest.ts';
import { activityDeps, openTestRegistry, seedLine, type TestRegistry } from '../helpers/db.ts';
import { anyDrop, hugeLine, tryParse } from '../../scripts/chaos/fuzz.ts';

let t: TestRegistry;
let ingest: ReturnType<typeof ingestActivities>;
let dropDir: string;
const line = 'fuzzed';
const escapee = `escaped-by-digest-${process.pid}-${Date.now().toString(36)}`;
let n = 0;

beforeAll(async () => {
  t = await openTestRegistry('security_ingest');
  await seedLine(t.registry, line);
  dropDir = join(t.dir, 'incoming');
  mkdirSync(dropDir, { recursive: true });
  ingest = ingestActivities(activityDeps(t));
});
afterAll(async () => t?.close());

type Outcome = { status: 'accepted' | 'duplicate' } | { status: 'quarantined'; reason: string } | { status: 'crash'; error: unknown };

async function ingestRequest(request: unknown): Promise<Outcome> {
  try {
    const r = await ingest.ingestDrop({ line, request: request as never, key: `k-${++n}` });
    return { status: r.status };
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === 'InvalidDataError' && err.nonRetryable) return { status: 'quarantined', reason: err.message };
    return { status: 'crash', error: err };
  }
}

const quarantineRoot = () => join(t.dir, 'quarantine');

/** Every folder under quarantine/ is named by a digest: nothing was written elsewhere by a name from a request. */
function quarantineIsConfined() {
  for (const name of readdirSync(quarantineRoot())) expect(name).toMatch(/^[0-9a-f]{64}$/);
}

async function expectQuarantined(request: unknown, reason: RegExp, opts: { keepsContent?: boolean } = {}) {
  const started = Date.now();
  const outcome = await ingestRequest(request);
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(outcome).toMatchObject({ status: 'quarantined' });
  const why = (outcome as { reason: string }).reason;
  expect(why).toMatch(reason);
  const digest = (request as { digest?: unknown } | null)?.digest;
  if (typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest)) {
    const kept = join(quarantineRoot(), digest);
    expect(JSON.parse(readFileSync(join(kept, 'reason.json'), 'utf8')).reason).toBe(why);
    expect(existsSync(join(kept, 'content'))).toBe(opts.keepsContent ?? false);
    expect(await t.registry.getDrop(line, digest)).toMatchObject({ status: 'quarantined', reason: why });
  }
  return why;
}

describe('fuzzed drop files through ingest', () => {
  it('accepts each file or quarantines it with the reason parseDrop gives, bytes kept', async () => {
    const inputs = [...fc.sample(anyDrop, { numRuns: 70, seed: 21 }), ...fc.sample(hugeLine, { numRuns: 1, seed: 22 })];
    const seen = new Set<string>();
    const tally = { accepted: 0, quarantined: 0 };
    for (const [i, input] of inputs.entries()) {
      const digest = sha256Hex(input.bytes);
      if (seen.has(digest)) continue;
      seen.add(digest);
      const path = join(dropDir, `${i}-${input.file}`);
      writeFileSync(path, input.bytes);
      const expected = tryParse(input.bytes, path);
      const outcome = await ingestRequest({ path, digest, source: `fuzz-${i}` });
      if (outcome.status === 'crash') throw outcome.error;
      if (expected.kind === 'accepted' && expected.train === 0) {
        // Valid records, but nothing to train on: refused at ingest, not left to fail the cycle.
        expect(outcome, input.label).toMatchObject({ status: 'quarantined', reason: expect.stringMatching(/the file holds no training records/) });
        tally.quarantined++;
      } else if (expected.kind === 'accepted') {
        expect(outcome, input.label).toEqual({ status: 'accepted' });
        expect((await t.registry.getDrop(line, digest))?.status).toBe('accepted');
        tally.accepted++;
      } else {
        expect(expected.kind, input.label).toBe('rejected');
        expect(outcome, input.label).toEqual({ status: 'quarantined', reason: (expected as { message: string }).message });
        const kept = join(quarantineRoot(), digest);
        expect(Buffer.compare(readFileSync(join(kept, 'content')), Buffer.from(input.bytes))).toBe(0);
        const record = JSON.parse(readFileSync(join(kept, 'reason.json'), 'utf8'));
        expect(record).toMatchObject({ line, digest, file: path, reason: (outcome as { reason: string }).reason });
        expect(record.reason.startsWith(`${path}: `)).toBe(true);
        tally.quarantined++;
      }
    }
    expect(tally.accepted).toBeGreaterThan(5);
    expect(tally.quarantined).toBeGreaterThan(20);
    quarantineIsConfined();
  });

  it('never accepts bytes other than those sent, however the file changes while it is read', async () => {
    const path = join(dropDir, 'changing.jsonl');
    const a = Buffer.from(Array.from({ length: 4000 }, (_, i) => JSON.stringify({ text: `version a record ${i}` })).join('\n'));
    const b = Buffer.from(Array.from({ length: 3000 }, (_, i) => JSON.stringify({ text: `version b record ${i} is longer` })).join('\n'));
    writeFileSync(path, a);
    let stop = false;
    // Rewrites in place (truncate, then write) as fast as it can, so reads see torn and mixed contents.
    const writer = (async () => {
      for (let k = 0; !stop; k++) {
        writeFileSync(path, k % 2 ? a : b);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const outcomes: string[] = [];
    try {
      for (let k = 0; k < 20; k++) {
        const sent = k % 2 ? a : b;
        const digest = sha256Hex(sent);
        const outcome = await ingestRequest({ path, digest, source: `changing-${k}` });
        if (outcome.status === 'crash') throw outcome.error;
        if (outcome.status === 'quarantined')
          expect(outcome.reason).toMatch(/changed after it was sent \(sent [0-9a-f]{12}, read [0-9a-f]{12}\); send it again$/);
        outcomes.push(outcome.status);
      }
    } finally {
      stop = true;
      await writer;
    }
    // Whatever was accepted is exactly one of the two contents, intact.
    for (const sent of [a, b]) {
      const drop = await t.registry.getDrop(line, sha256Hex(sent));
      if (drop?.status === 'accepted') expect(Buffer.compare(Buffer.from(await t.store.get(sha256Hex(sent))), sent)).toBe(0);
    }
    expect(outcomes.length).toBe(20);
  });
});

describe('drops with nothing to train on', () => {
  it('quarantines a probe-only drop and a single held-out record with the reason', async () => {
    for (const [name, body, counts] of [
      ['probes-only.jsonl', '{"prompt": "The lamp costs ", "completion": "12 credits."}\n', '0 held out, 1 probes'],
      ['held-out.jsonl', '{"text": "only one record", "split": "heldout"}\n', '1 held out, 0 probes'],
    ] as const) {
      const path = join(dropDir, name);
      writeFileSync(path, body);
      const why = await expectQuarantined(
        { path, digest: sha256Hex(body), source: name.replace('.jsonl', '') },
        new RegExp(`${name.replace('.', '\\.')}: the file holds no training records \\(${counts}\\); add text records`),
        { keepsContent: true },
      );
      expect(why.startsWith(path)).toBe(true);
    }
  });
});

describe('special files and secrets', () => {
  const request = (path: string, digest = sha256Hex(path)) => ({ path, digest, source: 'special' });

  it('refuses a named pipe, a device, a folder, a link loop and a missing file without blocking', async () => {
    const fifo = join(dropDir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    await expectQuarantined(request(fifo), /pipe\.jsonl: the path is not a regular file \(a device, pipe or socket\)$/);
    // Devices are outside every drop root; with /dev made a root they are still refused, as devices.
    await expectQuarantined(request('/dev/zero'), /^\/dev\/zero: the path is outside the drop roots/);
    await withDropRoots([dropDir, '/dev'], async () => {
      await expectQuarantined(request('/dev/zero', sha256Hex('/dev/zero as a root')), /^\/dev\/zero: the path is not a regular file/);
      await expectQuarantined(request('/dev/urandom'), /^\/dev\/urandom: the path is not a regular file/);
    });
    await expectQuarantined(request(dropDir), /: the path is a folder, not a file$/);
    const loop = join(dropDir, 'loop.jsonl');
    symlinkSync(loop, loop);
    await expectQuarantined(request(loop), /loop\.jsonl: the path is a loop of symbolic links$/);
    await expectQuarantined(request(join(dropDir, 'missing.jsonl')), /missing\.jsonl: the file does not exist$/);
    await expectQuarantined(request(join(dropDir, 'missing', 'x.jsonl')), /x\.jsonl: the file does not exist$/);
  });

  it('refuses a file over the size limit without reading it', async () => {
    const big = join(dropDir, 'big.jsonl');
    writeFileSync(big, '');
    truncateSync(big, MAX_DROP_BYTES + 1); // sparse: no disk used
    await expectQuarantined(request(big), new RegExp(`big\\.jsonl: the file is ${MAX_DROP_BYTES + 1} bytes, over the ${MAX_DROP_BYTES}-byte limit$`));
    rmSync(big);
  });

  it("never trains on, nor copies into quarantine, the installation's signing key or store", async () => {
    const keyFile = join(t.dir, 'keys', 'ed25519.key');
    const key = readFileSync(keyFile);
    // Sent with its true digest, as an insider who can read it would: still refused, and its bytes not kept.
    await expectQuarantined(
      request(keyFile, sha256Hex(key)),
      /ed25519\.key: the path is inside the installation's keys folder; drops are read from elsewhere$/,
    );
    const link = join(dropDir, 'innocent.txt');
    symlinkSync(keyFile, link);
    await expectQuarantined(
      request(link, sha256Hex(Buffer.concat([key, Buffer.from('via a link')]))),
      /innocent\.txt: the path is inside the installation's keys folder/,
    );
    const blob = await t.store.put(Buffer.from('{"text": "stored"}\n'));
    await expectQuarantined(request(t.store.pathOf(blob), blob), /the path is inside the installation's artifacts folder/);
    // Nowhere under the data folder is there a copy of the key.
    const copies = execFileSync('grep', ['-rlF', key.toString('utf8').split('\n')[1]!, t.dir], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(copies.map((p) => relative(t.dir, p))).toEqual(['keys/ed25519.key']);
  });
});

/** Runs `fn` with PERENNIAL_DROP_ROOTS set to `roots` (the workers read it on every drop). */
async function withDropRoots(roots: string[], fn: () => Promise<void>) {
  const saved = process.env.PERENNIAL_DROP_ROOTS;
  process.env.PERENNIAL_DROP_ROOTS = roots.join(':');
  try {
    await fn();
  } finally {
    if (saved === undefined) delete process.env.PERENNIAL_DROP_ROOTS;
    else process.env.PERENNIAL_DROP_ROOTS = saved;
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('drop roots and file modes', () => {
  const secret = '{"text": "a private note of the worker\'s user"}\n';

  it('refuses a file outside the drop roots without reading or copying it, naming the path and the roots', async () => {
    const elsewhere = join(t.dir, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    const file = join(elsewhere, 'private.jsonl');
    writeFileSync(file, secret);
    await withDropRoots([dropDir], async () => {
      const outside = new RegExp(`^${escapeRe(file)}: the path is outside the drop roots \\(${escapeRe(dropDir)}\\)`);
      // A wrong digest made ingest copy the bytes into quarantine/<digest>/content; with the right one it trained on them.
      await expectQuarantined({ path: file, digest: sha256Hex('something else'), source: 'outsider' }, outside);
      await expectQuarantined({ path: file, digest: sha256Hex(secret), source: 'outsider' }, outside);
      // A link inside a root to a file outside is outside.
      const link = join(dropDir, 'looks-inside.jsonl');
      symlinkSync(file, link);
      await expectQuarantined({ path: link, digest: sha256Hex('via a link'), source: 'outsider' }, /looks-inside\.jsonl: the path is outside the drop roots/);
      // A file in a root is read as before.
      const inside = join(dropDir, 'inside.jsonl');
      writeFileSync(inside, '{"text": "inside the root"}\n{"text": "and another"}\n');
      expect(await ingestRequest({ path: inside, digest: sha256Hex(readFileSync(inside)), source: 'insider' })).toEqual({ status: 'accepted' });
    });
    const copies = execFileSync('grep', ['-rlF', 'a private note', t.dir], { encoding: 'utf8' }).trim().split('\n');
    expect(copies.map((p) => relative(t.dir, p))).toEqual(['elsewhere/private.jsonl']);
  });

  it('keeps quarantined bytes and reasons readable by their owner only', async () => {
    const file = join(dropDir, 'changed-later.jsonl');
    writeFileSync(file, '{"text": "changed after it was sent"}\n');
    const digest = sha256Hex('what was sent');
    await expectQuarantined({ path: file, digest, source: 'changed' }, /the file changed after it was sent/, { keepsContent: true });
    const kept = join(quarantineRoot(), digest);
    expect(statSync(quarantineRoot()).mode & 0o777).toBe(0o700);
    expect(statSync(kept).mode & 0o777).toBe(0o700);
    expect(statSync(join(kept, 'content')).mode & 0o777).toBe(0o600);
    expect(statSync(join(kept, 'reason.json')).mode & 0o777).toBe(0o600);
  });
});

describe('links and the temporary folder', () => {
  it('refuses a drop in the system temporary folder unless a root is configured, naming the roots', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'perennial-tmpdrop-'));
    try {
      const file = join(tmp, 'dropped.jsonl');
      const body = '{"text": "anyone can write here"}\n{"text": "and swap it for a link"}\n';
      writeFileSync(file, body);
      // No PERENNIAL_DROP_ROOTS: the defaults, which are the data folder's drops/ and demo-drops/ only.
      await withDropRoots([], async () => {
        const roots = `${join(t.dir, 'drops')}, ${join(t.dir, 'demo-drops')}`;
        await expectQuarantined(
          { path: file, digest: sha256Hex(body), source: 'tmp' },
          new RegExp(`^${escapeRe(file)}: the path is outside the drop roots \\(${escapeRe(roots)}\\); drops are read only from there`),
        );
      });
      // Made a root by the one who runs the workers, it is read (a fresh file: the first one's digest is taken).
      const again = join(tmp, 'configured.jsonl');
      writeFileSync(again, `${body}{"text": "in a configured root"}\n`);
      await withDropRoots([tmp], async () => {
        expect(await ingestRequest({ path: again, digest: sha256Hex(readFileSync(again)), source: 'tmp-configured' })).toEqual({ status: 'accepted' });
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reads no file through a link: not as the last part, nor a linked folder that leads outside the roots', async () => {
    const root = join(dropDir, 'linked');
    const outside = join(t.dir, 'outside-links');
    mkdirSync(root, { recursive: true });
    mkdirSync(outside, { recursive: true });
    const body = '{"text": "a file in the root"}\n{"text": "read through a link"}\n';
    writeFileSync(join(root, 'real.jsonl'), body);
    symlinkSync(join(root, 'real.jsonl'), join(root, 'alias.jsonl'));
    writeFileSync(join(outside, 'private.jsonl'), '{"text": "outside, behind a linked folder"}\n');
    symlinkSync(outside, join(root, 'folder'));
    await withDropRoots([root], async () => {
      // A link to a file in the root is refused too (O_NOFOLLOW): the name is what was checked.
      await expectQuarantined({ path: join(root, 'alias.jsonl'), digest: sha256Hex(`${body} via the alias`), source: 'alias' }, /alias\.jsonl: the path is a symbolic link; drops are not read through links/);
      await expectQuarantined(
        { path: join(root, 'folder', 'private.jsonl'), digest: sha256Hex('{"text": "outside, behind a linked folder"}\n'), source: 'folder' },
        /folder\/private\.jsonl: the path is outside the drop roots/,
      );
      expect(await ingestRequest({ path: join(root, 'real.jsonl'), digest: sha256Hex(body), source: 'real' })).toEqual({ status: 'accepted' });
    });
  });

  it('never reads the file outside while another process swaps a file in the root for a link to it', async () => {
    const root = join(dropDir, 'race');
    mkdirSync(root, { recursive: true });
    const outside = join(t.dir, 'outside-race.jsonl');
    const secretBody = '{"text": "OUTSIDE-RACE-SECRET of the worker\'s user"}\n';
    writeFileSync(outside, secretBody);
    const inside = join(root, 'inside.master');
    writeFileSync(inside, '{"text": "the file that belongs in the root"}\n');
    const target = join(root, 'swapped.jsonl');
    const readOf = (digest: string) => digest.slice(0, 12);
    const [insideRead, outsideRead] = [readOf(sha256Hex(readFileSync(inside))), readOf(sha256Hex(secretBody))];
    // Renames are atomic: the name is always either a regular file (a hard link of the master) or a link outside.
    const swapper = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs'); const [inside, outside, target] = process.argv.slice(1);
         for (let i = 0; ; i++) { const tmp = target + '.' + (i % 2); fs.rmSync(tmp, { force: true });
           if (i % 2) fs.symlinkSync(outside, tmp); else fs.linkSync(inside, tmp); fs.renameSync(tmp, target); }`,
        inside,
        outside,
        target,
      ],
      { stdio: 'ignore' },
    );
    const tally = { inside: 0, refused: 0, outside: 0, tries: 0 };
    try {
      await withDropRoots([root], async () => {
        const deadline = Date.now() + 10_000;
        while (tally.tries < 2000 && Date.now() < deadline) {
          // A digest of its own per try (a digest is taken once per line); what was read shows in the reason.
          const outcome = await ingestRequest({ path: target, digest: sha256Hex(`race try ${tally.tries++}`), source: 'race' });
          if (outcome.status === 'crash') throw outcome.error;
          const why = outcome.status === 'quarantined' ? outcome.reason : '';
          if (outcome.status === 'accepted' || why.includes(`read ${outsideRead}`)) tally.outside++;
          else if (why.includes(`read ${insideRead}`)) tally.inside++;
          else tally.refused++;
        }
      });
    } finally {
      swapper.kill('SIGKILL');
    }
    // Both states were seen (the race ran), and the file outside was never read.
    expect(tally.inside).toBeGreaterThan(0);
    expect(tally.refused).toBeGreaterThan(0);
    expect(tally.outside, JSON.stringify(tally)).toBe(0);
    const copies = execFileSync('grep', ['-rlF', 'OUTSIDE-RACE-SECRET', t.dir], { encoding: 'utf8' }).trim().split('\n');
    expect(copies.map((p) => relative(t.dir, p))).toEqual(['outside-race.jsonl']);
  }, 60_000);
});

describe('drop requests no CLI would send', () => {
  // A fresh digest per request: a digest is taken once per line.
  let k = 0;
  const fresh = () => sha256Hex(`request ${k++}`);
  const cases: [string, unknown, RegExp][] = [
    ['a traversal digest', { path: '/nonexistent.jsonl', digest: `../../../../${escapee}`, source: 's' }, /digest: a digest is 64 lowercase hex characters/],
    ['an upper-case digest', { path: '/nonexistent.jsonl', digest: fresh().toUpperCase(), source: 's' }, /digest: a digest is 64 lowercase hex/],
    ['a relative path', { path: '../../etc/passwd', digest: fresh(), source: 's' }, /path: the drop path must be absolute/],
    ['an empty path', { path: '', digest: fresh(), source: 's' }, /path: /],
    [
      'a source with slashes',
      { path: '/tmp/x.jsonl', digest: fresh(), source: '../../x' },
      /source: a source name may not contain control characters or slashes/,
    ],
    ['a recipe of the wrong types', { path: '/tmp/x.jsonl', digest: fresh(), source: 's', recipe: { steps: 'many' } }, /recipe\.steps: /],
    // Unknown fields are counted, not named: a field's name is input too.
    ['a recipe with unknown fields', { path: '/tmp/x.jsonl', digest: fresh(), source: 's', recipe: { evil: true } }, /recipe: 1 unexpected field$/],
    ['a number for the path', { path: 42, digest: fresh(), source: 's' }, /path: /],
    ['unknown fields', { path: '/tmp/x.jsonl', digest: fresh(), source: 's', weights: 'AAAA', 'sk-live-SECRETKEY123': 1 }, /is invalid: 2 unexpected fields$/],
    ['null', null, /is invalid: /],
    ['a string', '/etc/passwd', /is invalid: /],
  ];

  it.each(cases)('quarantines %s with a message naming the field', async (_what, request, reason) => {
    const why = await expectQuarantined(request, reason);
    expect(why).toMatch(/^drop request for .* is invalid: /);
    quarantineIsConfined();
  });

  it('wrote nothing outside the data folder', () => {
    // (Before ingest validated requests, this digest made a folder at the root of the file system.)
    for (let up = 0; up <= 6; up++) expect(existsSync(join(quarantineRoot(), ...Array<string>(up).fill('..'), escapee))).toBe(false);
    quarantineIsConfined();
  });
});
