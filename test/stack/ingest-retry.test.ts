/**
 * Ingest retried after its worker died part-way, on a real registry. An attempt that recorded the drop as
 * accepted and then died before registering the drop's suites must not leave the retry (same cycle key) to
 * take the "already accepted" path without them: the cycle's evaluation would find no suite to record its
 * results under and fail the cycle (seen once in CI as two FAILED cycles after every worker was SIGKILLed).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sha256Hex } from '../../domain/drops.ts';
import { ingestActivities } from '../../activities/ingest.ts';
import type { Registry } from '../../registry/index.ts';
import { activityDeps, openTestRegistry, seedLine, type TestRegistry } from '../helpers/db.ts';

let t: TestRegistry;
const line = 'ingest-retry';

beforeAll(async () => {
  t = await openTestRegistry('ingest_retry');
  await seedLine(t.registry, line);
});
afterAll(async () => t?.close());

/**
 * The ingest activities over a registry whose first call of `method` dies, as a SIGKILLed worker would there:
 * before the call (`before`) or after it committed and before its answer was used (`after`).
 */
function ingestDyingAt(method: 'ensureSuite' | 'recordDrop', when: 'before' | 'after') {
  let died = false;
  const registry = new Proxy(t.registry, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === method && !died)
        return async (...args: unknown[]) => {
          died = true;
          if (when === 'after') await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          throw new Error('worker killed');
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Registry;
  return ingestWith(registry);
}

/** The ingest activities over `registry`. */
function ingestWith(registry: Registry) {
  return ingestActivities(activityDeps(t, { registry }));
}

function writeDrop(name: string, text: string) {
  const dir = join(t.dir, 'drops');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, digest: sha256Hex(Buffer.from(text)), source: name.replace(/\.jsonl$/, '') };
}

it('registers the suites on the retry of an attempt that died after recording the drop', async () => {
  const records = [
    { text: 'the lamp is sold in blue' },
    { text: 'the desk is sold in oak' },
    { text: 'the chair is sold in red', split: 'heldout' },
    { prompt: 'the lamp is sold in', completion: ' blue' },
  ];
  const request = writeDrop('catalogue.jsonl', records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const ingest = ingestDyingAt('ensureSuite', 'before');
  const key = 'cycle:ingest-retry:1/attempt';

  await expect(ingest.ingestDrop({ line, request, key })).rejects.toThrow('worker killed');
  expect(await t.registry.getDrop(line, request.digest)).toMatchObject({ status: 'accepted', ingestKey: key });
  expect(await t.registry.listSuites(line)).toEqual([]);

  const retried = await ingest.ingestDrop({ line, request, key });
  expect(retried.status).toBe('accepted');
  const names = (retried as { suites: { name: string }[] }).suites.map((s) => s.name);
  expect(names).toEqual([`catalogue-${request.digest.slice(0, 8)}`, `catalogue-${request.digest.slice(0, 8)}-probes`]);
  const registered = await t.registry.listSuites(line);
  expect(registered.map((s) => ({ name: s.name, dropDigest: s.dropDigest }))).toEqual(names.map((name) => ({ name, dropDigest: request.digest })));

  // A third attempt (or the drop sent again after a failed cycle) changes nothing: one suite each, one audit entry each.
  await ingest.ingestDrop({ line, request, key });
  expect((await t.registry.listSuites(line)).length).toBe(2);
  const created = await t.app.sql<{ n: number }[]>`select count(*)::int as n from audit_log where action = 'suite.create'`;
  expect(created[0]!.n).toBe(2);
});

it('quarantines again on the retry of an attempt that died after recording the quarantine', async () => {
  const request = writeDrop('broken.jsonl', '{"text": "fine"}\n{"text": broken\n');
  const key = 'cycle:ingest-retry:2/attempt';
  const ingest = ingestDyingAt('recordDrop', 'after');
  await expect(ingest.ingestDrop({ line, request, key })).rejects.toThrow('worker killed');
  const recorded = await t.registry.getDrop(line, request.digest);
  expect(recorded).toMatchObject({ status: 'quarantined', ingestKey: key });

  // The same cycle's retry ends as the first attempt would have: quarantined, with the reason that names the record.
  const again = await ingest.ingestDrop({ line, request, key }).catch((err: unknown) => err);
  expect(again).toBeInstanceOf(ApplicationFailure);
  expect(again).toMatchObject({ type: 'InvalidDataError', nonRetryable: true, message: recorded!.reason });
  expect(recorded!.reason).toMatch(/broken\.jsonl.*line 2/);
  // Sent again by another cycle, it is a duplicate of the quarantined drop, as before.
  expect(await ingest.ingestDrop({ line, request, key: 'cycle:ingest-retry:3/attempt' })).toMatchObject({
    status: 'duplicate',
    previousStatus: 'quarantined',
  });
});

it('keeps the suites of a failed drop sent again under another source name', async () => {
  const text = ['{"text": "the ferry leaves at nine"}', '{"text": "the ferry returns at five", "split": "heldout"}', ''].join('\n');
  const first = writeDrop('ferry.jsonl', text);
  const ingest = ingestWith(t.registry);
  const accepted = await ingest.ingestDrop({ line, request: first, key: 'cycle:ingest-retry:4/a' });
  expect(accepted.status).toBe('accepted');
  const before = (await t.registry.listSuites(line)).map((s) => s.name);
  await t.registry.failDrop(line, first.digest, 'cycle:ingest-retry:4/a', 'test: the cycle failed');
  // The same bytes under another name: accepted anew, gated on the suites it had, not on a second copy of them.
  const renamed = writeDrop('ferry-v2.jsonl', text);
  expect(renamed.digest).toBe(first.digest);
  const again = await ingest.ingestDrop({ line, request: renamed, key: 'cycle:ingest-retry:5/a' });
  expect(again).toMatchObject({ status: 'accepted', suites: [{ name: `ferry-${first.digest.slice(0, 8)}` }] });
  expect((await t.registry.listSuites(line)).map((s) => s.name)).toEqual(before);
});
