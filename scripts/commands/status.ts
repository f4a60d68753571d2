/**
 * `perennial status [line] [--watch]`: lines, channels, running cycles and applications. The live view is
 * fed by the line workflow's `state` query (never by logs): phase, training step and loss as they happen.
 */
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { lineState } from '../../client/ops.ts';
import type { LineState } from '../../schemas/contracts/messages.ts';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { listUpgrades, upgradeProgress } from '../../client/upgrades.ts';
import { openClient, openRegistry, output } from './context.ts';
import type { TrialInfo } from '../../registry/registry.ts';
import { rlRunLines } from './rl-status.ts';
import { limitsOf } from './line.ts';
import { isStoppedEarly } from '../../domain/recipe-search.ts';

function describe(state: LineState | null): string {
  if (!state) return 'workflow not started (no drop yet)';
  const c = state.current;
  const queue = state.queue.length ? `, ${state.queue.length} queued` : '';
  if (!c) return `idle${queue}`;
  const progress = c.phase === 'adapt' && c.steps ? ` step ${c.step ?? 0}/${c.steps} loss ${c.loss?.toFixed(3) ?? '-'}` : '';
  return `${c.cycleId} ${c.phase}${c.version ? ` v${c.version}` : ''}${progress}${queue}`;
}

/** One line per cycle that searched its recipe: trial segments, compute, and the chosen (or best) trial. */
function searchLines(trials: TrialInfo[]): string[] {
  const byCycle = new Map<string, TrialInfo[]>();
  for (const t of trials) byCycle.set(t.cycleId, [...(byCycle.get(t.cycleId) ?? []), t]);
  const out = byCycle.size ? ['recipe searches:'] : [];
  for (const [cycle, ts] of byCycle) {
    const chosen = ts.find((t) => t.status === 'chosen');
    const stopped = ts.find(isStoppedEarly);
    const r = (chosen?.recipe ?? {}) as { steps?: number; learningRate?: number };
    const flops = ts.reduce((a, t) => a + t.flops, 0);
    out.push(
      `  ${cycle.padEnd(24)} ${String(ts.length).padStart(3)} trial segment(s) ${flops.toExponential(2)} FLOPs  ${chosen ? `chose ${chosen.trial}: ${r.steps} steps, lr ${r.learningRate}, margin ${chosen.margin?.toFixed(4) ?? '-'}` : stopped ? `stopped ${stopped.trial} early at step ${stopped.toStep} of ${(stopped.recipe as { steps?: number }).steps}: no passing recipe` : 'no passing recipe'}`,
    );
  }
  return out;
}

export function register(program: Command) {
  program
    .command('status [line]')
    .description('show lines, channels, running cycles and applications; --watch follows a line live')
    .option('--watch', 'follow the line with a progress bar until Ctrl-C')
    .option('--json', 'print JSON')
    .action(async (line: string | undefined, o) => {
      if (line !== undefined) parseCliArgs(CliArgs.line, { line }, { line: '<line>' });
      const { client, target, close } = await openClient();
      const { registry, close: closeRegistry } = openRegistry(target);
      try {
        if (line && o.watch) return await watch(line);
        const lines = line ? [await registry.getLine(line)] : await registry.listLines();
        const rows = await Promise.all(
          lines.map(async (l) => ({
            line: l.name,
            kind: l.kind,
            foundation: l.foundationLine ?? null,
            channels: Object.fromEntries((await registry.getChannels(l.name)).map((c) => [c.channel, c.version])),
            workflow: await lineState(client, l.name),
            // Recipe auto: the trials of this line's searches (only with one line named: the listing stays short).
            trials: line ? await registry.listTrials(l.name) : [],
            // Feedback cycles: the RL runs of this line's versions.
            rlRuns: line ? await registry.getRlRuns(l.name) : [],
            // What one cycle may spend (a drop's recipe moves only within it).
            ...(line ? { limits: limitsOf(l) } : {}),
          })),
        );
        // An application that holds its version while its channel moved on (a release, a foundation upgrade's
        // transfer) is shown the newer version as available.
        const apps = await Promise.all(
          (await registry.listApplications()).map(async (a) => {
            const now = (await registry.getChannels(a.line)).find((c) => c.channel === a.channel)?.version ?? null;
            return { ...a, upgradeAvailable: a.policy === 'hold' && now !== null && now !== a.resolvedVersion ? now : null };
          }),
        );
        const t = { client, taskQueue: target.taskQueue };
        // The latest upgrades with their per-line outcomes (a running one reports its pending and running lines).
        const upgrades = await Promise.all((await listUpgrades(t, 5)).map(async (u) => ({ ...u, progress: await upgradeProgress(t, u.workflowId) })));
        // A failed seal leaves the audit log unanchored while the loop goes on: said first, until a seal covers it.
        const sealFailure = await registry.sealFailure();
        output(o.json, { uiUrl: target.uiUrl ?? null, lines: rows, applications: apps, upgrades, audit: { sealFailure } }, () => {
          if (target.uiUrl) console.log(`Temporal Web UI: ${target.uiUrl}/namespaces/${target.namespace}/workflows`);
          if (sealFailure)
            console.log(
              `audit log NOT SEALED since ${sealFailure.at.toISOString()} (audit entry ${sealFailure.seq}): ${sealFailure.reason}\n  run perennial audit verify, then perennial audit seal`,
            );
          if (!rows.length) console.log('no lines yet: perennial line create <name> --kind foundation');
          for (const r of rows) {
            const ch =
              Object.entries(r.channels)
                .map(([c, v]) => `${c}=${v}`)
                .join(' ') || 'no releases';
            console.log(`${r.line.padEnd(16)} ${ch.padEnd(36)} ${describe(r.workflow)}`);
            const seal = r.workflow?.sealFailure;
            if (seal) console.log(`  audit seal failed after ${seal.cycleId} at ${seal.at}: ${seal.reason}`);
            if (line)
              for (const c of r.workflow?.recent ?? [])
                console.log(`  ${c.cycleId.padEnd(24)} ${c.verdict.padEnd(20)} ${c.version ? `v${c.version}` : '  '}  ${c.source}: ${c.reason}`);
            if (line) for (const row of searchLines(r.trials)) console.log(row);
            if (line) for (const row of rlRunLines(r.rlRuns)) console.log(row);
            if (r.limits)
              console.log(
                `  limits: ${Object.entries(r.limits)
                  .map(([k, v]) => `${k} ${k === 'maxFlopsPerCycle' ? v.toExponential(2) : v}`)
                  .join(', ')} (perennial line limits ${r.line})`,
              );
          }
          if (upgrades.length) console.log('upgrades:');
          for (const u of upgrades) {
            const p = u.progress;
            const counts = p ? ` ${p.done.length} done, ${p.running.length} running, ${p.pending.length} pending` : '';
            console.log(`  ${u.workflowId.padEnd(30)} ${u.status.toLowerCase()}${counts}`);
            for (const d of p?.done ?? []) console.log(`    ${d.line.padEnd(16)} ${d.verdict.padEnd(12)} ${d.version ? `v${d.version}` : '  '}  ${d.reason}`);
          }
          if (apps.length) console.log('applications:');
          for (const a of apps)
            console.log(
              `  ${a.app.padEnd(18)} ${`${a.line}@${a.channel}`.padEnd(22)} ${a.policy.padEnd(7)} -> version ${a.resolvedVersion ?? 'none'}` +
                (a.upgradeAvailable !== null ? ` (upgrade available: version ${a.upgradeAvailable} on ${a.channel})` : ''),
            );
        });
      } finally {
        await closeRegistry();
        await close();
      }

      async function watch(name: string) {
        const bar = new SingleBar(
          {
            format: `${name} {phase} |{bar}| {value}/{total} steps  loss {loss}  {cycle}`,
            hideCursor: true,
            clearOnComplete: false,
            // Not a terminal (`| tee`, `| head`): a line every 2 s, so a log gets the progress and a closed reader ends the watch.
            noTTYOutput: true,
            notTTYSchedule: 2000,
          },
          Presets.shades_classic,
        );
        let started = false;
        let stop = false;
        process.once('SIGINT', () => (stop = true));
        while (!stop) {
          const state = await lineState(client, name).catch(() => null);
          const c = state?.current;
          const payload = {
            phase: (c?.phase ?? (state ? 'idle' : 'not started')).padEnd(17),
            loss: c?.loss?.toFixed(3) ?? '-',
            cycle: c ? `${c.cycleId}${state!.queue.length ? ` (+${state!.queue.length} queued)` : ''}` : '',
          };
          const total = c?.steps ?? 1;
          const value =
            c?.phase === 'adapt' ? (c.step ?? 0) : c && ['evaluate', 'gate', 'canary', 'awaiting-approval', 'promote', 'done'].includes(c.phase) ? total : 0;
          if (!started) (bar.start(total, value, payload), (started = true));
          else (bar.setTotal(total), bar.update(value, payload));
          await new Promise((r) => setTimeout(r, 500));
        }
        bar.stop();
      }
    });
}
