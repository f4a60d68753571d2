/** The report's RL section: per RL run (one per version trained from feedback), reward, gold reward and KL over steps. */
import type { RlRunInfo } from '../registry/registry.ts';

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3));

/**
 * Whether the run's reward-hacking guard had a gold of its own to compare with: "no gold check" when no held-out
 * prompt had one (the line allowed feedback without gold; gold then equals the reward), null for a run recorded
 * before this was kept.
 */
export function goldCheckWords(rewardStats: Record<string, unknown>): string | null {
  const gold = rewardStats.goldPrompts;
  const prompts = rewardStats.heldOutPrompts;
  if (typeof gold !== 'number') return null;
  if (gold === 0) return 'no gold check';
  return typeof prompts === 'number' && gold < prompts ? `gold on ${gold} of ${prompts} held-out prompts` : `gold on every held-out prompt`;
}

/** One run's curves: reward (blue) and gold (green) on [0, 1], KL (red, dashed) scaled to its budget when known. */
export function rlCurvesSvg(run: RlRunInfo): string {
  const W = 360;
  const H = 180;
  const pad = { l: 40, r: 10, t: 22, b: 28 };
  const pts = run.checks;
  if (!pts.length) return '';
  const budget = Number(run.recipe.klBudget);
  const klMax = Math.max(Number.isFinite(budget) && budget > 0 ? budget : 0, ...pts.map((p) => p.kl), 1e-9);
  const s0 = pts[0]!.step;
  const s1 = Math.max(pts[pts.length - 1]!.step, s0 + 1);
  const x = (s: number) => pad.l + ((s - s0) / (s1 - s0)) * (W - pad.l - pad.r);
  const y = (v: number) => pad.t + (1 - v) * (H - pad.t - pad.b);
  const line = (f: (p: RlRunInfo['checks'][number]) => number) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(f(p)).toFixed(1)}`).join(' ');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="${W}" height="${H}" role="img" aria-label="RL v${run.version}">`,
    `<text x="${pad.l}" y="14" class="title">v${run.version}: reward (blue), gold (green), KL / ${fmt(klMax)} (red dashed)</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" class="axis"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" class="axis"/>`,
    `<text x="${pad.l - 4}" y="${y(1) + 4}" text-anchor="end" class="tick">1</text><text x="${pad.l - 4}" y="${y(0) + 4}" text-anchor="end" class="tick">0</text>`,
    `<text x="${x(s0)}" y="${H - pad.b + 14}" text-anchor="middle" class="tick">step ${s0}</text><text x="${x(s1)}" y="${H - pad.b + 14}" text-anchor="end" class="tick">${s1}</text>`,
    `<path d="${line((p) => p.reward)}" fill="none" stroke="#2859a8" stroke-width="2"/>`,
    `<path d="${line((p) => p.gold)}" fill="none" stroke="#1b7f3b" stroke-width="2"/>`,
    `<path d="${line((p) => p.kl / klMax)}" fill="none" stroke="#c0392b" stroke-dasharray="4 3"/>`,
    ...pts.map(
      (p) =>
        `<circle cx="${x(p.step)}" cy="${y(p.reward)}" r="3" fill="#2859a8"><title>${esc(`step ${p.step}: reward ${fmt(p.reward)}, gold ${fmt(p.gold)}, KL ${fmt(p.kl)}`)}</title></circle>`,
    ),
    '</svg>',
  ].join('');
}

/** The section for a line's RL runs; empty when the line has none. */
export function rlSection(runs: RlRunInfo[]): string {
  if (!runs.length) return '';
  const rows = runs
    .map(
      (r) =>
        `<tr><td>v${r.version}</td><td>${esc(r.stoppedBy)}</td><td>${fmt(r.finalKl)}</td><td>${esc(goldCheckWords(r.rewardStats) ?? '-')}</td><td>${esc(r.feedbackDigests.map((d) => d.slice(0, 12)).join(', '))}</td></tr>`,
    )
    .join('');
  return [
    `<h3>Learning from feedback (RL runs)</h3><p><small>Held-out checks of each RL run: training reward, gold reward (the stricter check) and mean per-token KL to the released version.</small></p>`,
    `<div class="curves">${runs.map(rlCurvesSvg).join('')}</div>`,
    `<table><tr><th>version</th><th>stopped by</th><th>final KL</th><th>gold check</th><th>feedback</th></tr>${rows}</table>`,
  ].join('');
}
