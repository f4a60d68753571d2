/**
 * Recipe `auto` on a line whose gate has a plasticity floor (issue 33, item 8): the search judges each trial at its
 * horizon on what the final gate judges, its plasticity included, so a good drop is promoted rather than every trial
 * failing the plasticity rule for want of a measurement.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDrop, waitForCycle } from '../../client/ops.ts';
import { startTestLoop, writeTextDrop, type TestLoop } from '../helpers/loop.ts';

let loop: TestLoop;
const suffix = Date.now().toString(36);

beforeAll(async () => {
  loop = await startTestLoop('search-plasticity');
  await loop.startWorkers();
});
afterAll(async () => loop?.close());

describe('recipe auto with a minPlasticity gate rule', () => {
  it('judges trials on their plasticity as the final gate does and promotes a good drop', async () => {
    const line = `plastic-${suffix}`;
    // A floor a freshly trained tiny model clears with room (its ratio is near 1): only a missing figure fails it.
    await loop.createLine(line, { recipe: { search: { width: 2 } }, gateRules: { minPlasticity: 0.2 } });
    // In the loop's drop root (<data>/drops), where ingest reads drops from.
    const drops = join(loop.dataDir, 'drops');
    mkdirSync(drops, { recursive: true });
    const { request } = await sendDrop(loop, line, writeTextDrop(drops, 'p.jsonl', 11, 30));
    const summary = await waitForCycle(loop.client, line, request.digest);
    expect(summary.reason).not.toMatch(/plasticity \(not measured\)/);
    expect(summary.verdict).toBe('promoted');
    // The gate measured the candidate above the floor, and the chosen trial's margin was not the missing figure's -1.
    const [measured] = await loop.registry.getPlasticity(line, summary.version!);
    expect((measured!.record as { ratio: number }).ratio).toBeGreaterThanOrEqual(0.2);
    const chosen = (await loop.registry.listTrials(line)).filter((t) => t.status === 'chosen');
    expect(chosen).toHaveLength(1);
    expect(chosen[0]!.margin).toBeGreaterThanOrEqual(0);
  });
});
