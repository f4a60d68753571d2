/**
 * A field's name is a drop's content too: a record with an unexpected field is quarantined with a reason that
 * counts the fields and names the line, and the name itself (here an API key) reaches neither the reason, the
 * workflow histories nor the audit log. Through the release loop on the real stack, for a data drop and a
 * feedback drop.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { lineWorkflowId } from '../../schemas/contracts/ids.ts';
import { startTestLoop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const line = `fields-${Date.now().toString(36)}`;

beforeAll(async () => {
  loop = await startTestLoop('fields');
  await loop.createLine(line);
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

/** Every string in a workflow's history, with byte fields (payload data) decoded as UTF-8, so a search sees what a payload holds. */
async function historyText(workflowId: string): Promise<string> {
  const out: string[] = [];
  const walk = (value: unknown, depth: number): void => {
    if (depth > 64 || value === null || value === undefined) return;
    if (typeof value === 'string') out.push(value);
    else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) for (const v of value) walk(v, depth + 1);
    else if (typeof value === 'object') for (const v of Object.values(value)) walk(v, depth + 1);
  };
  walk(await loop.client.workflow.getHandle(workflowId).fetchHistory(), 0);
  return out.join('\n');
}

describe('unexpected field names in a drop', () => {
  it.each([
    {
      what: 'a data drop',
      secret: 'sk-live-SECRETKEY123',
      kind: undefined,
      records: (secret: string) => [{ text: 'the first record is fine' }, { text: 'so is the second' }, { text: 'the third has a key', [secret]: 'x' }],
      reason: /: line 3: 1 unexpected field \(a record is \{"text", "split"\?\} or \{"prompt", "completion"\}\)$/,
    },
    {
      what: 'a feedback drop',
      secret: 'sk-live-SECRETFEEDBACK456',
      kind: 'feedback' as const,
      records: (secret: string) => [
        { prompt: 'say yes:', verifier: { kind: 'exact', answer: 'yes' } },
        { prompt: 'say no:', verifier: { kind: 'exact', answer: 'no' } },
        { prompt: 'rate this:', completion: 'fine', reward: 1, [secret]: 1, [`${secret}-2`]: 2 },
      ],
      reason: /: line 3: 2 unexpected fields \(a rating is \{"prompt", "completion", "reward"\}\)$/,
    },
  ])('quarantines $what counting the fields by line, never quoting their names', async ({ what, secret, kind, records, reason }) => {
    const file = join(loop.dataDir, `${what.replace(/ /g, '-')}.jsonl`);
    writeFileSync(file, records(secret).map((r) => JSON.stringify(r)).join('\n') + '\n');
    const { request } = await sendDrop(loop, line, file, kind ? { kind } : {});
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.verdict).toBe('quarantined');
    expect(summary.reason).toMatch(reason);
    expect(summary.reason!.startsWith(`${file}: `)).toBe(true);
    const kept = JSON.parse(readFileSync(join(loop.dataDir, 'quarantine', request.digest, 'reason.json'), 'utf8')) as { reason: string };
    expect(kept.reason).toBe(summary.reason);
    expect((await loop.registry.getDrop(line, request.digest))?.reason).toBe(summary.reason);
    // The key is in the file (kept in quarantine, the owner's alone) and nowhere that records or shows the loop.
    const key = secret.replace(/^sk-live-/, '');
    for (const id of [summary.cycleId, lineWorkflowId(line)]) {
      const text = await historyText(id);
      expect(text).toContain(request.digest); // the search reads the history, payloads included
      expect(text).not.toContain(key);
    }
    const audit = JSON.stringify(await loop.registry.listAudit({ limit: 1_000_000 }));
    expect(audit).toContain(request.digest);
    expect(audit).not.toContain(key);
  });
});
