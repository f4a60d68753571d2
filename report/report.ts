/**
 * The HTML report: one self-contained page (inline SVG and CSS, no scripts, nothing fetched) with, per line,
 * the metric curve of every suite across versions with the gate's bounds, the forgetting matrix as a heatmap,
 * the release timeline per channel, and the quarantined and rejected drops with their reasons.
 */
import type { Registry, RlRunInfo, TrialInfo } from '../registry/registry.ts';
import { rlSection } from './rl.ts';
import { trialsHtml } from './trials.ts';

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (x: number) => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(3)) : '-');

export interface Heatmap {
  title: string;
  rows: string[];
  cols: string[];
  /** values[r][c]; NaN = not measured. */
  values: number[][];
  /** Per column: true when higher is better (exact match), false for loss. */
  higherIsBetter: boolean[];
}

/** A heatmap as SVG: each column is coloured from its own worst (red) to best (green) value. */
export function heatmapSvg(h: Heatmap): string {
  const cell = { w: 86, h: 24 };
  const left = Math.max(80, ...h.rows.map((r) => r.length * 7 + 12));
  const top = 110;
  const width = left + h.cols.length * cell.w + 10;
  const height = top + h.rows.length * cell.h + 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="${width}" height="${height}" role="img" aria-label="${esc(h.title)}">`,
  ];
  h.cols.forEach((c, j) => {
    const x = left + j * cell.w + cell.w / 2;
    parts.push(`<text x="${x}" y="${top - 6}" transform="rotate(-35 ${x} ${top - 6})" class="col">${esc(c.length > 26 ? c.slice(0, 25) + '…' : c)}</text>`);
  });
  h.rows.forEach((r, i) => parts.push(`<text x="${left - 8}" y="${top + i * cell.h + 16}" text-anchor="end" class="row">${esc(r)}</text>`));
  h.cols.forEach((_, j) => {
    const col = h.values.map((row) => row[j]!).filter(Number.isFinite);
    const lo = Math.min(...col);
    const hi = Math.max(...col);
    h.rows.forEach((_, i) => {
      const v = h.values[i]![j]!;
      let fill = '#eee';
      if (Number.isFinite(v)) {
        const t = hi === lo ? 1 : (v - lo) / (hi - lo);
        const good = h.higherIsBetter[j] ? t : 1 - t;
        fill = `hsl(${Math.round(good * 120)}, 65%, ${78 - good * 18}%)`;
      }
      parts.push(
        `<rect x="${left + j * cell.w}" y="${top + i * cell.h}" width="${cell.w - 2}" height="${cell.h - 2}" fill="${fill}"><title>${esc(`${h.rows[i]} / ${h.cols[j]}: ${fmt(v)}`)}</title></rect>`,
      );
      parts.push(
        `<text x="${left + j * cell.w + cell.w / 2 - 1}" y="${top + i * cell.h + 16}" text-anchor="middle" class="val">${Number.isFinite(v) ? fmt(v) : ''}</text>`,
      );
    });
  });
  parts.push('</svg>');
  return parts.join('');
}

interface Series {
  suite: string;
  metric: 'loss' | 'exactMatch' | 'plasticity';
  points: { version: number; value: number; bound: number | null; verdict: string }[];
}

/** One suite's metric across versions, with the gate's bound for each candidate as a dashed line. */
function curveSvg(s: Series): string {
  const W = 320;
  const H = 170;
  const pad = { l: 44, r: 10, t: 22, b: 28 };
  const vals = s.points.flatMap((p) => [p.value, ...(p.bound !== null ? [p.bound] : [])]).filter(Number.isFinite);
  if (!vals.length) return '';
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (hi - lo < 1e-9) ((lo -= 0.5), (hi += 0.5));
  const versions = s.points.map((p) => p.version);
  const vmin = Math.min(...versions);
  const vmax = Math.max(...versions);
  const x = (v: number) => pad.l + (vmax === vmin ? (W - pad.l - pad.r) / 2 : ((v - vmin) / (vmax - vmin)) * (W - pad.l - pad.r));
  const y = (v: number) => pad.t + (1 - (v - lo) / (hi - lo)) * (H - pad.t - pad.b);
  const path = s.points.map((p, i) => `${i ? 'L' : 'M'}${x(p.version).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const bounds = s.points.filter((p) => p.bound !== null);
  const boundPath = bounds.map((p, i) => `${i ? 'L' : 'M'}${x(p.version).toFixed(1)},${y(p.bound!).toFixed(1)}`).join(' ');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="${W}" height="${H}" role="img" aria-label="${esc(s.suite)}">`,
    `<text x="${pad.l}" y="14" class="title">${esc(s.suite)} (${s.metric === 'loss' ? 'loss, lower is better' : s.metric === 'plasticity' ? 'ratio to a fresh model, dashed: fresh = 1' : 'exact match, higher is better'})</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" class="axis"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" class="axis"/>`,
    `<text x="${pad.l - 4}" y="${y(hi) + 4}" text-anchor="end" class="tick">${fmt(hi)}</text><text x="${pad.l - 4}" y="${y(lo) + 4}" text-anchor="end" class="tick">${fmt(lo)}</text>`,
    ...s.points.map((p) => `<text x="${x(p.version)}" y="${H - pad.b + 14}" text-anchor="middle" class="tick">v${p.version}</text>`),
    boundPath ? `<path d="${boundPath}" class="bound"><title>gate bound</title></path>` : '',
    `<path d="${path}" class="series"/>`,
    ...s.points.map(
      (p) =>
        `<circle cx="${x(p.version)}" cy="${y(p.value)}" r="4" class="pt ${p.verdict === 'fail' ? 'fail' : 'pass'}"><title>${esc(`v${p.version}: ${fmt(p.value)}${p.bound !== null ? ` (bound ${fmt(p.bound)})` : ''} ${p.verdict}`)}</title></circle>`,
    ),
    '</svg>',
  ].join('');
}

/** Channel -> version over time, as step lines (one colour per channel). */
function timelineSvg(releases: { channel: string; toVersion: number | null; at: Date; actor: string; reason: string }[]): string {
  if (!releases.length) return '<p>No releases yet.</p>';
  const W = 680;
  const H = 200;
  const pad = { l: 40, r: 90, t: 12, b: 24 };
  const t0 = Math.min(...releases.map((r) => r.at.getTime()));
  const t1 = Math.max(...releases.map((r) => r.at.getTime()), t0 + 1);
  const vmax = Math.max(...releases.map((r) => r.toVersion ?? 0), 1);
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v: number) => pad.t + (1 - v / vmax) * (H - pad.t - pad.b);
  const colours: Record<string, string> = { stable: '#1b7f3b', canary: '#d08700', candidate: '#5b6bbf' };
  const channels = [...new Set(releases.map((r) => r.channel))];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="${W}" height="${H}" role="img" aria-label="release timeline">`];
  parts.push(`<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" class="axis"/>`);
  for (let v = 1; v <= vmax; v++) parts.push(`<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end" class="tick">v${v}</text>`);
  channels.forEach((c, k) => {
    const rs = releases.filter((r) => r.channel === c);
    const colour = colours[c] ?? `hsl(${(k * 70) % 360},50%,40%)`;
    let d = '';
    rs.forEach((r, i) => {
      const px = x(r.at.getTime());
      d += i === 0 ? `M${px.toFixed(1)},${y(r.toVersion ?? 0).toFixed(1)}` : ` H${px.toFixed(1)} V${y(r.toVersion ?? 0).toFixed(1)}`;
    });
    d += ` H${(W - pad.r).toFixed(1)}`;
    parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2" opacity="0.85"/>`);
    rs.forEach((r) =>
      parts.push(
        `<circle cx="${x(r.at.getTime())}" cy="${y(r.toVersion ?? 0)}" r="3.5" fill="${colour}"><title>${esc(`${r.at.toISOString()} ${c} -> ${r.toVersion === null ? 'none' : `v${r.toVersion}`} by ${r.actor}: ${r.reason}`)}</title></circle>`,
      ),
    );
    parts.push(`<text x="${W - pad.r + 6}" y="${pad.t + 14 + k * 16}" fill="${colour}" class="legend">${esc(c)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

export interface LineReport {
  line: string;
  kind: string;
  foundation: string | null;
  /** Versions that moved the line onto another foundation version (transfers), with their inheritance checks. */
  upgrades: { version: number; teacher: number; from: string; to: string; verdict: string; checks: string[]; released: boolean }[];
  heatmap: Heatmap;
  series: Series[];
  /** Each measured version's plasticity ratio, with the fresh model's 1 as the reference line; null when none was measured. */
  plasticity: Series | null;
  /** RL runs (versions trained from feedback), with their reward, gold and KL checks. */
  rl: RlRunInfo[];
  releases: { channel: string; fromVersion: number | null; toVersion: number | null; at: Date; actor: string; reason: string }[];
  drops: { source: string; digest: string; status: string; reason: string | null; receivedAt: Date }[];
  channels: { channel: string; version: number | null }[];
  /** Every recipe-search trial of the line (issue 15). */
  trials: TrialInfo[];
}

/** Collects what the report shows for one line from the registry. */
export async function collectLine(registry: Registry, line: string): Promise<LineReport> {
  const info = await registry.getLine(line);
  const [versions, evaluations, releases, drops, channels, plasticity, trials, rl] = await Promise.all([
    registry.listVersions(line),
    registry.getEvaluations(line),
    registry.listReleases(line),
    registry.listDrops(line),
    registry.getChannels(line),
    registry.getPlasticity(line),
    registry.listTrials(line),
    registry.getRlRuns(line),
  ]);
  const suiteKinds = new Map<string, string>();
  for (const e of evaluations) if (!(e.metrics as { evidence?: boolean }).evidence) suiteKinds.set(e.suite, e.kind);
  const suites = [...suiteKinds.keys()];
  const metricOf = (kind: string) => (kind === 'probe' ? 'exactMatch' : 'loss') as 'loss' | 'exactMatch';
  const value = (version: number, suite: string) => {
    const e = evaluations.find((x) => x.version === version && x.suite === suite);
    const m = e?.metrics as Record<string, number> | undefined;
    return m?.[metricOf(suiteKinds.get(suite)!)] ?? NaN;
  };
  const gates = new Map<number, Awaited<ReturnType<Registry['getGateDecisionFor']>>>();
  for (const v of versions) gates.set(v.version, await registry.getGateDecisionFor(line, v.version));
  const heatmap: Heatmap = {
    title: `${line}: metric per version and suite`,
    rows: versions.map((v) => `v${v.version}${gates.get(v.version)?.verdict === 'fail' ? ' (rejected)' : ''}`),
    cols: suites,
    values: versions.map((v) => suites.map((s) => value(v.version, s))),
    higherIsBetter: suites.map((s) => metricOf(suiteKinds.get(s)!) === 'exactMatch'),
  };
  const series: Series[] = suites.map((suite) => ({
    suite,
    metric: metricOf(suiteKinds.get(suite)!),
    points: versions
      .map((v) => {
        const gate = gates.get(v.version);
        const verdict = (gate?.suites as { suite: string; bound: number | null }[] | undefined)?.find((s) => s.suite === suite);
        return { version: v.version, value: value(v.version, suite), bound: verdict?.bound ?? null, verdict: gate?.verdict ?? 'none' };
      })
      .filter((p) => Number.isFinite(p.value)),
  }));
  const plasticityPoints = plasticity
    .map((p) => ({ version: p.version, value: Number(p.record.ratio), bound: 1, verdict: gates.get(p.version)?.verdict ?? 'none' }))
    .filter((p) => Number.isFinite(p.value));
  // A foundation upgrade is a version whose foundation version differs from its parent's: a transfer.
  const byNumber = new Map(versions.map((v) => [v.version, v]));
  const ref = (f: { line: string; version: number } | null) => (f ? `${f.line}@${f.version}` : '-');
  const upgrades = versions
    .filter((v) => v.parentVersion !== null && ref(v.foundationVersion) !== ref(byNumber.get(v.parentVersion)?.foundationVersion ?? null))
    .map((v) => {
      const gate = gates.get(v.version);
      const inherit = ((gate?.suites ?? []) as { suite: string; pass: boolean; reason: string }[]).filter((x) => x.suite.startsWith('inherit:'));
      return {
        version: v.version,
        teacher: v.parentVersion!,
        from: ref(byNumber.get(v.parentVersion!)?.foundationVersion ?? null),
        to: ref(v.foundationVersion),
        verdict: gate?.verdict ?? 'none',
        checks: inherit.map((x) => `${x.suite.slice('inherit:'.length)}: ${x.reason}`),
        released: channels.some((c) => c.channel === 'stable' && c.version === v.version),
      };
    });
  return {
    line,
    kind: info.kind,
    foundation: info.foundationLine,
    upgrades,
    heatmap,
    series,
    plasticity: plasticityPoints.length ? { suite: 'plasticity', metric: 'plasticity', points: plasticityPoints } : null,
    rl,
    releases: releases.map((r) => ({
      channel: r.channel,
      fromVersion: r.fromVersion,
      toVersion: r.toVersion,
      at: new Date(r.at),
      actor: r.actor,
      reason: r.reason,
    })),
    drops: drops.map((d) => ({ source: d.source, digest: d.digest, status: d.status, reason: d.reason, receivedAt: new Date(d.receivedAt) })),
    channels: channels.map((c) => ({ channel: c.channel, version: c.version })),
    trials,
  };
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:22px}h2{margin-top:36px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.curves{display:flex;flex-wrap:wrap;gap:8px}svg text{font:11px system-ui,sans-serif}svg .title{font-weight:600}svg .col,svg .row{font-size:11px}svg .val{font-size:10px}
.axis{stroke:#999}.series{fill:none;stroke:#2859a8;stroke-width:2}.bound{fill:none;stroke:#c0392b;stroke-dasharray:4 3}.pt.pass{fill:#2859a8}.pt.fail{fill:#c0392b}
.quarantined{color:#a05a00}.rejected{color:#c0392b}.accepted{color:#1b7f3b}small{color:#666}`;

/** The whole page for `lines` (every line when omitted). */
export async function buildReport(registry: Registry, lines?: string[]): Promise<string> {
  const names = lines ?? (await registry.listLines()).map((l) => l.name);
  const reports = await Promise.all(names.map((n) => collectLine(registry, n)));
  const apps = await registry.listApplications();
  const body = reports.map((r) => {
    const problems = r.drops.filter((d) => d.status !== 'accepted');
    return [
      `<h2 id="${esc(r.line)}">${esc(r.line)} <small>${esc(r.kind)}${r.foundation ? ` on ${esc(r.foundation)}` : ''} · ${r.channels.map((c) => `${esc(c.channel)}=v${c.version ?? '-'}`).join(' · ')}</small></h2>`,
      `<h3>Metric per suite across versions</h3><p><small>Points: each version's result (red: the gate failed it). Dashed red: the bound the gate applied to that candidate.</small></p>`,
      `<div class="curves">${r.series.map(curveSvg).join('')}</div>`,
      r.plasticity
        ? `<h3>Plasticity across versions</h3><p><small>How well a copy of each version learns a seeded probe task against a freshly initialised model given the same budget (dashed: the fresh model, 1).</small></p><div class="curves">${curveSvg(r.plasticity)}</div>`
        : '',
      rlSection(r.rl),
      `<h3>Forgetting matrix</h3><p><small>Rows: versions; columns: suites; colour runs per column from worst (red) to best (green). Loss for text suites, exact match for probe suites.</small></p>`,
      r.heatmap.rows.length && r.heatmap.cols.length ? heatmapSvg(r.heatmap) : '<p>No evaluations yet.</p>',
      `<h3>Release timeline</h3>`,
      timelineSvg(r.releases),
      `<table><tr><th>time</th><th>channel</th><th>move</th><th>actor</th><th>reason</th></tr>${r.releases
        .map(
          (x) =>
            `<tr><td>${esc(x.at.toISOString())}</td><td>${esc(x.channel)}</td><td>${x.fromVersion ?? '-'} → ${x.toVersion ?? '-'}</td><td>${esc(x.actor)}</td><td>${esc(x.reason)}</td></tr>`,
        )
        .join('')}</table>`,
      ...(r.upgrades.length
        ? [
            `<h3>Foundation upgrades</h3><table><tr><th>version</th><th>foundation</th><th>teacher</th><th>gate</th><th>stable</th><th>inheritance</th></tr>${r.upgrades
              .map(
                (u) =>
                  `<tr><td>v${u.version}</td><td>${esc(u.from)} → ${esc(u.to)}</td><td>v${u.teacher}</td><td class="${u.verdict === 'pass' ? 'accepted' : 'rejected'}">${esc(u.verdict)}</td><td>${u.released ? 'yes' : 'no'}</td><td>${u.checks.map(esc).join('<br>')}</td></tr>`,
              )
              .join('')}</table>`,
          ]
        : []),
      trialsHtml(r.trials),
      `<h3>Quarantined and rejected drops</h3>`,
      problems.length
        ? `<table><tr><th>received</th><th>source</th><th>digest</th><th>status</th><th>reason</th></tr>${problems
            .map(
              (d) =>
                `<tr><td>${esc(d.receivedAt.toISOString())}</td><td>${esc(d.source)}</td><td><code>${esc(d.digest.slice(0, 12))}</code></td><td class="${esc(d.status)}">${esc(d.status)}</td><td>${esc(d.reason ?? '')}</td></tr>`,
            )
            .join('')}</table>`
        : '<p>None.</p>',
    ].join('\n');
  });
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>perennial report</title><style>${CSS}</style></head><body>
<h1>perennial report</h1><p><small>Generated ${esc(new Date().toISOString())} · lines: ${reports.map((r) => `<a href="#${esc(r.line)}">${esc(r.line)}</a>`).join(', ') || 'none'}</small></p>
${apps.length ? `<h2>Applications</h2><table><tr><th>application</th><th>bound to</th><th>policy</th><th>resolves to</th></tr>${apps.map((a) => `<tr><td>${esc(a.app)}</td><td>${esc(a.line)}@${esc(a.channel)}</td><td>${esc(a.policy)}</td><td>v${a.resolvedVersion ?? '-'}</td></tr>`).join('')}</table>` : ''}
${body.join('\n')}
</body></html>
`;
}
