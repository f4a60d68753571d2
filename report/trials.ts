/** The report's recipe-search section (issue 15): per cycle, every trial segment with its recipe, compute, margin and fate. */
import { isStoppedEarly } from '../domain/recipe-search.ts';
import type { TrialInfo } from '../registry/trials.ts';

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** One table per cycle that searched its recipe; empty when none did. */
export function trialsHtml(trials: TrialInfo[]): string {
  if (!trials.length) return '';
  const byCycle = new Map<string, TrialInfo[]>();
  for (const t of trials) byCycle.set(t.cycleId, [...(byCycle.get(t.cycleId) ?? []), t]);
  const tables = [...byCycle].map(([cycle, ts]) => {
    const flops = ts.reduce((a, t) => a + t.flops, 0);
    const version = ts.find((t) => t.version !== null)?.version;
    const rows = ts
      .map((t) => {
        const r = t.recipe as { learningRate?: number; warmupSteps?: number; replayRatio?: number; l2Pull?: number; steps?: number };
        const cls = t.status === 'chosen' ? 'accepted' : t.status === 'failed' || t.status === 'rejected' || isStoppedEarly(t) ? 'rejected' : '';
        return `<tr><td>${esc(t.trial)}</td><td>${t.bracket}/${t.rung}</td><td>${esc(t.source)}</td><td>${t.fromStep}→${t.toStep} of ${r.steps ?? '-'}</td><td>${r.learningRate ?? '-'}</td><td>${r.warmupSteps ?? '-'}</td><td>${r.replayRatio ?? '-'}</td><td>${r.l2Pull ?? '-'}</td><td>${t.flops.toExponential(2)}</td><td>${t.margin === null ? '-' : t.margin.toFixed(4)}</td><td class="${cls}">${esc(isStoppedEarly(t) ? 'stopped early' : t.status)}</td><td>${esc(t.summary)}</td></tr>`;
      })
      .join('');
    return `<h4>${esc(cycle)} <small>${ts.length} trial segment(s), ${flops.toExponential(2)} FLOPs${version ? ` · made v${version}` : ' · no version'}</small></h4>
<table><tr><th>trial</th><th>bracket/rung</th><th>from</th><th>steps</th><th>lr</th><th>warmup</th><th>replay</th><th>l2</th><th>FLOPs</th><th>gate margin</th><th>status</th><th>gate</th></tr>${rows}</table>`;
  });
  return `<h3>Recipe search</h3><p><small>Each cycle with recipe auto: its trials (bracket/rung of the successive halving), the recipe each trained, its compute and its gate margin (loss: fraction of the bound left; exact match: points). The chosen trial's weights are the candidate. A trial run alone (a warm start, a repair, the base recipe) is judged on its way at fixed steps; one below every passing update of the line's record there is stopped early and ends the search.</small></p>${tables.join('\n')}`;
}
