/** `perennial report [--out file.html]`: one self-contained HTML page of curves, forgetting matrix, releases and quarantine. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { buildReport } from '../../report/report.ts';
import { openRegistry } from './context.ts';

export function register(program: Command) {
  program
    .command('report')
    .description('write the HTML report: metric curves with gate bounds, forgetting matrix, release timeline, quarantined drops')
    .option('--out <file>', 'where to write it', 'report.html')
    .option('--line <line...>', 'only these lines')
    .action(async (o) => {
      const { registry, close } = openRegistry();
      try {
        const html = await buildReport(registry, o.line);
        writeFileSync(o.out, html);
        console.log(`wrote ${resolve(o.out)} (${(html.length / 1024).toFixed(0)} KiB)`);
      } finally {
        await close();
      }
    });
}
