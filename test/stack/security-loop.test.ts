/**
 * Security and data sovereignty of the release loop, on worker *processes* (scripts/stack/stack.ts) with a
 * PostgreSQL and a Temporal server of their own:
 *
 * - no outbound network: training, evaluation and the release loop open no connection except to loopback.
 *   Two independent views, because neither alone is complete: /proc (every socket the worker processes and
 *   their children hold, sampled every 50 ms; sees the Temporal core's native gRPC connections) and a
 *   preloaded hook (every TCP/UDP/DNS attempt made through Node's APIs, however short). Where /proc is
 *   missing (not Linux) the /proc half is skipped with a note; `npm run chaos` also runs a whole cycle in a
 *   network namespace that has nothing but loopback when the machine allows it (root and `unshare`).
 * - workflow payloads carry ids and digests only: every history on this Temporal server is searched for the
 *   drops' texts, the signing key and the database passwords.
 * - the database role the workers use cannot alter or delete history.
 * - malformed and hostile drops, sent straight to the line workflow by a client other than the CLI, are
 *   quarantined with their reasons and crash no worker.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../domain/drops.ts';
import { lineWorkflowId } from '../../schemas/contracts/ids.ts';
import { lineWorkflow } from '../../workflows/line-workflow.ts';
import { dataDropSignal } from '../../schemas/contracts/messages.ts';
import { chaosBaseDir, sleep, startChaosStack, stateOf, waitForDrops, type ChaosStack } from '../../scripts/chaos/harness.ts';
import { readJsonLines } from '../../scripts/chaos/scenarios.ts';
import { SocketWatch, procNetAvailable } from '../../scripts/chaos/netwatch.ts';

let s: ChaosStack;
let watch: SocketWatch | undefined;
let netLog: string;
let base: string | undefined;
const marker = `SOVEREIGN${Date.now().toString(36)}X`;
const texts: string[] = [];
const sent: { line: string; digest: string }[] = [];
const lines = { main: 'sec-main', hostile: ['sec-hostile-a', 'sec-hostile-b', 'sec-hostile-c'] };

/** A drop whose every record carries a unique marker: if any of it reaches a history, the search finds it. */
function markedDrop(name: string, n: number, probe = false): string {
  const records = Array.from({ length: n }, (_, i) => {
    const text = `${marker} record ${name} ${i}: the north road leads to the old mill at dawn.`;
    texts.push(text);
    return probe && i % 3 === 0 ? { prompt: `${marker} ${name} ${i} costs `, completion: `${i} credits.` } : { text };
  });
  return s.writeRaw(`${name}.jsonl`, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

beforeAll(async () => {
  base = chaosBaseDir('perennial-security');
  netLog = join(base, 'net.log');
  writeFileSync(netLog, '');
  s = await startChaosStack({
    name: 'sec',
    baseDir: base,
    workerEnv: { NODE_OPTIONS: `--import ${pathToFileURL(join(import.meta.dirname, '..', '..', 'scripts', 'chaos', 'net-guard.mjs')).href}`, PERENNIAL_NET_LOG: netLog },
  });
  if (procNetAvailable()) watch = new SocketWatch(() => s.live().map((w) => w.child.pid!)).start();
  await Promise.all([lines.main, ...lines.hostile].map((l) => s.createLine(l)));

  // The loop at work: a promoted drop, a probe drop, a destructive update the gate rejects, a malformed drop.
  for (const [file, opts] of [
    [markedDrop('first', 40), {}],
    [markedDrop('probes', 30, true), {}],
    [markedDrop('destructive', 30), { recipe: { learningRate: 1, gradClip: 1000, warmupSteps: 0, l2Pull: 0 } }],
    [s.writeRaw('malformed.jsonl', `{"text": "${marker} fine"}\n{"text": "${marker} broken\n`), {}],
  ] as const) {
    const request = await s.send(lines.main, file, opts);
    sent.push({ line: lines.main, digest: request.digest });
  }
}, 240_000);

afterAll(async () => {
  watch?.stop();
  await s?.close();
  // The installation (52 MB) is this file's to remove: the harness leaves a folder it was given alone.
  if (base && !process.env.PERENNIAL_KEEP_TEST_DATA) rmSync(base, { recursive: true, force: true });
});

describe('hostile drops sent straight to a line workflow', () => {
  // Spread over three lines, so their cycles run side by side.
  const lineOf = (i: number) => lines.hostile[i % lines.hostile.length]!;
  const signal = (line: string, request: unknown) =>
    s.client.workflow.signalWithStart(lineWorkflow, {
      workflowId: lineWorkflowId(line),
      taskQueue: s.taskQueue,
      args: [{ line }],
      signal: dataDropSignal,
      signalArgs: [request as never],
    });
  const fresh = (label: string) => sha256Hex(`${marker} ${label}`);

  it('quarantines each with its reason, never reads a secret, and the line keeps serving', async () => {
    const fifo = join(s.dropDir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    const keyFile = join(s.dataDir, 'keys', 'ed25519.key');
    const cases: [unknown, RegExp][] = [
      [{ path: '/nonexistent.jsonl', digest: '../../../../escaped', source: 'hostile' }, /drop request for \/nonexistent\.jsonl is invalid: digest: /],
      [{ path: 'relative/drop.jsonl', digest: fresh('relative'), source: 'hostile' }, /path: the drop path must be absolute/],
      [{ path: '/dev/zero', digest: fresh('zero'), source: 'hostile' }, /^\/dev\/zero: the path is outside the drop roots/],
      [{ path: fifo, digest: fresh('fifo'), source: 'hostile' }, /pipe\.jsonl: the path is not a regular file/],
      // Outside the default roots (<data>/drops, <data>/demo-drops) since the temporary folder is none of them.
      [{ path: keyFile, digest: sha256Hex(readFileSync(keyFile)), source: 'hostile' }, /ed25519\.key: the path is outside the drop roots/],
      [{ path: '/tmp/x.jsonl', digest: fresh('recipe'), source: 'hostile', recipe: { steps: 'forever' } }, /recipe\.steps: /],
      [{ path: '/tmp/x.jsonl', digest: fresh('extra'), source: 'hostile', weights: 'AAAA' }, /1 unexpected field/],
    ];
    for (const [i, [request]] of cases.entries()) await signal(lineOf(i), request);
    const good = s.writeDrop('after-hostile.jsonl', 5, 20);
    const after = await s.send(lineOf(0), good);
    const done = await waitForDrops(
      s,
      [...cases.map(([r], i) => ({ line: lineOf(i), digest: (r as { digest: string }).digest })), { line: lineOf(0), digest: after.digest }],
      180_000,
    );
    cases.forEach(([request, reason], i) => {
      const c = done.get(`${lineOf(i)}/${(request as { digest: string }).digest}`)!;
      expect(c.verdict, `case ${i}`).toBe('quarantined');
      expect(c.reason, `case ${i}`).toMatch(reason);
    });
    expect(done.get(`${lineOf(0)}/${after.digest}`)?.verdict).toBe('promoted');
    // Every quarantine folder is a digest; none holds the key.
    const kept = execFileSync('ls', [join(s.dataDir, 'quarantine')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    for (const name of kept) expect(name).toMatch(/^[0-9a-f]{64}$/);
    const key = readFileSync(keyFile, 'utf8').split('\n')[1]!;
    expect(execFileSync('grep', ['-rlF', key, s.dataDir], { encoding: 'utf8' }).trim().split('\n')).toEqual([keyFile]);
  });

  // A payload without a string digest would make workflow code throw and retry its task forever, wedging the
  // line; the line workflow's signal handler refuses it (and counts it) instead.
  it('refuses a payload that is not a drop request without wedging the line', async () => {
    const line = 'sec-wedge';
    await s.createLine(line);
    await s.client.workflow.signalWithStart(lineWorkflow, {
      workflowId: lineWorkflowId(line),
      taskQueue: s.taskQueue,
      args: [{ line }],
      signal: dataDropSignal,
      signalArgs: [{ path: 42, digest: 7, source: null } as never],
    });
    const after = await s.send(line, s.writeDrop('after-wedge.jsonl', 6, 10));
    // Either the good drop after it is served, or a cycle of the line fails its workflow task (and would forever).
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(500)) {
      const state = await stateOf(s, line);
      if (state?.recent.some((c) => c.digest === after.digest)) {
        expect(state.malformedSignals).toBe(1);
        return;
      }
      const history = await s.client.workflow
        .getHandle(`cycle:${line}:1`)
        .fetchHistory()
        .catch(() => undefined);
      const failed = history?.events?.find((e) => e.workflowTaskFailedEventAttributes);
      if (failed) throw new Error(`cycle:${line}:1 fails its workflow task: ${failed.workflowTaskFailedEventAttributes!.failure?.message}`);
    }
    throw new Error('neither served nor failed within 60 s');
  });
});

describe('the loop at work', () => {
  it('ends every drop: promoted, rejected by the gate, or quarantined with the line of the error', async () => {
    const done = await waitForDrops(s, sent, 240_000);
    const verdicts = sent.map((d) => done.get(`${d.line}/${d.digest}`)!);
    expect(verdicts[0]!.verdict).toBe('promoted');
    expect(['promoted', 'rejected']).toContain(verdicts[1]!.verdict);
    expect(verdicts[2]!.verdict).toBe('rejected');
    expect(verdicts[3]).toMatchObject({ verdict: 'quarantined', reason: expect.stringMatching(/malformed\.jsonl: line 2: not valid JSON/) });
  });

  it('crashed no worker process', () => {
    for (const w of s.all())
      expect({ kind: w.kind, pid: w.child.pid, exit: w.child.exitCode ?? w.child.signalCode }).toEqual({ kind: w.kind, pid: w.child.pid, exit: null });
  });
});

describe('data sovereignty', () => {
  it('keeps everything it wrote under the data folder readable by its owner only', async () => {
    await s.registry.exportAuditRoot(); // the roots file too
    const open: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const rel = relative(s.dataDir, path);
        // The test's own drop folder, and the public key, which is meant to be handed out.
        if (rel === 'drops' || rel === join('keys', 'ed25519.pub.pem')) continue;
        const st = lstatSync(path);
        if (st.isDirectory()) {
          if ((st.mode & 0o077) !== 0) open.push(`${rel}/ ${(st.mode & 0o777).toString(8)}`);
          walk(path);
        } else if (st.isFile() && (st.mode & 0o077) !== 0) open.push(`${rel} ${(st.mode & 0o777).toString(8)}`);
      }
    };
    walk(s.dataDir);
    expect(open).toEqual([]);
    for (const dir of ['artifacts', 'quarantine', 'audit', 'logs', 'keys', 'temporal', 'run']) expect(readdirSync(s.dataDir), dir).toContain(dir);
    // The data folder itself: 0700, or 0711 as root so the embedded PostgreSQL (user postgres) reaches its own folder.
    expect(lstatSync(s.dataDir).mode & 0o777).toBe(process.getuid?.() === 0 ? 0o711 : 0o700);
  });

  it('opened no connection from a worker process except to loopback', async () => {
    const attempts = readJsonLines<{ api: string; host: string | null; port: number | null; loopback: boolean; pid: number }>(netLog);
    // The hook saw the workers' own connections (the PostgreSQL driver), so it was loaded and working.
    expect(attempts.filter((a) => a.api === 'tcp').length).toBeGreaterThan(0);
    expect(attempts.filter((a) => !a.loopback)).toEqual([]);
    if (!watch) {
      console.warn('security-loop: /proc/<pid>/net is not available here; the socket watch is skipped (the hook above still ran)');
      return;
    }
    watch.stop();
    expect(watch.samples).toBeGreaterThan(20);
    // It saw the connections to PostgreSQL and Temporal, so it was looking at the right processes.
    expect(watch.connections().length).toBeGreaterThan(1);
    expect(watch.outbound()).toEqual([]);
  });

  it('kept training data, keys and passwords out of every workflow history', async () => {
    const keyPem = readFileSync(join(s.dataDir, 'keys', 'ed25519.key'), 'utf8');
    const keyBody = keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
    const secrets = [
      ...texts.map((t, i) => [`drop text ${i}`, t] as const),
      ['the marker planted in every record', marker],
      ...keyBody.map((l) => ['the signing key', l] as const),
      ['the application role password', decodeURIComponent(new URL(s.appUrl).password)],
      ['the superuser password', decodeURIComponent(new URL(s.adminUrl).password)],
    ];
    let histories = 0;
    let text = '';
    for await (const wf of s.client.workflow.list()) {
      const history = await s.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      text += flatten(history) + '\n';
      histories++;
    }
    expect(histories).toBeGreaterThan(8);
    // The search reads payloads: the drops' digests are there.
    for (const d of sent) expect(text).toContain(d.digest);
    const found = secrets.filter(([, secret]) => secret.length >= 8 && text.includes(secret)).map(([what]) => what);
    expect(found).toEqual([]);
  });

  it('gives the workers a database role that cannot alter or delete history', async () => {
    const app = postgres(s.appUrl, { max: 1, onnotice: () => {} });
    try {
      const [me] = await app<{ user: string; superuser: boolean; createrole: boolean; bypassrls: boolean }[]>`
        select current_user as user, rolsuper as superuser, rolcreaterole as createrole, rolbypassrls as bypassrls from pg_roles where rolname = current_user`;
      expect(me).toMatchObject({ superuser: false, createrole: false, bypassrls: false });
      const [owner] = await app<{ owner: string }[]>`select tableowner as owner from pg_tables where tablename = 'audit_log'`;
      expect(owner!.owner).not.toBe(me!.user);
      const refused = async (statement: string, why: RegExp) => {
        await expect(app.unsafe(statement), statement).rejects.toThrow(why);
      };
      const denied = /permission denied|must be owner|insufficient privilege/;
      for (const [table, column] of [
        ['audit_log', 'actor'],
        ['releases', 'reason'],
        ['versions', 'code_revision'],
        ['version_files', 'role'],
        ['version_drops', 'drop_id'],
        ['evaluation_suites', 'name'],
        ['training_run_drops', 'drop_id'],
      ] as const) {
        await refused(`update ${table} set ${column} = ${column}`, denied);
        await refused(`delete from ${table}`, denied);
        await refused(`truncate ${table}`, denied);
      }
      // Facts that stay facts: a gate's verdict, a drop's digest and counts.
      await refused(`update gate_decisions set verdict = 'pass'`, denied);
      await refused(`update data_drops set digest = '${'0'.repeat(64)}'`, denied);
      await refused(`update data_drops set records = 0`, denied);
      // No way around the append-only triggers, the grants or the schema.
      await refused('alter table audit_log disable trigger user', denied);
      await refused('drop trigger audit_log_append_only on audit_log', denied);
      await refused('set session_replication_role = replica', /permission denied|must be superuser/);
      await refused('create table public.shadow (x int)', denied);
      // Granting itself a privilege is a no-op with a warning (it owns nothing): the delete is still refused.
      await app.unsafe(`grant delete on audit_log to ${me!.user}`).catch(() => undefined);
      await refused('delete from audit_log', denied);
      await refused('select * from drizzle.__drizzle_migrations', denied);
      await refused(`alter role ${me!.user} superuser`, denied);
      expect((await s.registry.verifyAudit()).ok).toBe(true);
      // It appends only through perennial_audit_append, which stamps the time and hashes: no row of its own making.
      const [last] = await app<{ seq: number; hash: string }[]>`select seq::int as seq, hash from audit_log order by seq desc limit 1`;
      await refused(
        `insert into audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
          values (${last!.seq + 1}, now(), 'mallory', 'channel.move', 'sec-main@stable', '{"to": 99}', '${last!.hash}', '${'f'.repeat(64)}')`,
        denied,
      );
      expect((await s.registry.verifyAudit()).ok).toBe(true);
    } finally {
      await app.end({ timeout: 5 });
    }
  });
});

/** Every string in a history, with byte fields (payload data) decoded as UTF-8. */
function flatten(value: unknown, out: string[] = [], depth = 0): string {
  if (depth > 64 || value === null || value === undefined) return out.join('\n');
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) flatten(v, out, depth + 1);
  else if (typeof value === 'object') for (const v of Object.values(value)) flatten(v, out, depth + 1);
  return out.join('\n');
}
