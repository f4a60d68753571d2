/**
 * The rooms of the house and which way their imports go (ARCHITECTURE.md, "Where each thing lives"): this
 * parses the import and export-from statements of every non-test TypeScript file and fails on an import that
 * runs against the layers, or on a file that has grown past the size a reader can hold.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const MAX_LINES = 700;

export interface Edge {
  from: string;
  /** A repository-relative path for a local module, the bare specifier for a package. */
  to: string;
  local: boolean;
  typeOnly: boolean;
}

/** Every import, export-from and dynamic import() of one source text; `import type` and all-type named imports count as type-only. */
export function importsOf(file: string, text: string): Edge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const edges: Edge[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    const local = specifier.startsWith('.');
    const to = local ? relative(ROOT, resolve(ROOT, dirname(file), specifier)) : specifier;
    edges.push({ from: file, to, local, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings : undefined;
      const allTypes =
        clause !== undefined &&
        (clause.isTypeOnly || (clause.name === undefined && named !== undefined && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause : undefined;
      const allTypes = node.isTypeOnly || (named !== undefined && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier.text, allTypes);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

const room = (path: string) => path.split('/')[0]!;
const under = (path: string, ...rooms: string[]) => rooms.some((r) => path === r || path.startsWith(`${r}/`));

/** Packages that workflow code (and every module it reaches by a value import) may load: deterministic, no I/O (@temporalio/workflow re-exports @temporalio/common). */
const WORKFLOW_PACKAGES = new Set(['@temporalio/workflow', '@temporalio/common', 'zod']);
/** Rooms whose files can never be part of the workflow bundle: they do I/O or load native code. */
const NOT_IN_WORKFLOWS = ['activities', 'registry', 'scripts', 'workers', 'model', 'client', 'bench', 'report', 'test', 'schemas/db'];

export function violations(files: Map<string, string>): string[] {
  const found: string[] = [];
  const graph = new Map<string, Edge[]>();
  for (const [file, text] of files) graph.set(file, importsOf(file, text));
  for (const [file, text] of files) {
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > MAX_LINES) found.push(`${file}: ${lines} lines (over ${MAX_LINES})`);
  }
  for (const edges of graph.values())
    for (const e of edges) {
      if (!e.local) continue;
      const at = `${e.from} -> ${e.to}`;
      if (under(e.to, 'test')) found.push(`${at}: a non-test file imports from test/`);
      if (under(e.from, 'model') && under(e.to, 'activities', 'workflows', 'scripts', 'registry', 'client', 'bench', 'report', 'workers'))
        found.push(`${at}: model/ imports from ${room(e.to)}/`);
      if (under(e.from, 'schemas') && !under(e.to, 'schemas')) found.push(`${at}: schemas/ (the ground) imports from ${room(e.to)}/`);
      if (under(e.from, 'domain') && !under(e.to, 'domain', 'schemas')) found.push(`${at}: domain/ (pure rules) imports from ${room(e.to)}/`);
      if (under(e.from, 'bench') && under(e.to, 'activities', 'workflows', 'scripts', 'registry', 'client', 'workers'))
        found.push(`${at}: bench/ imports from ${room(e.to)}/`);
      if (under(e.from, 'report', 'client') && under(e.to, 'scripts', 'workers', 'bench')) found.push(`${at}: ${room(e.from)}/ imports from ${room(e.to)}/`);
      if (under(e.from, 'registry') && under(e.to, 'activities', 'workflows', 'scripts', 'workers', 'client', 'bench', 'report', 'model'))
        found.push(`${at}: registry/ imports from ${room(e.to)}/`);
      if (under(e.from, 'activities') && under(e.to, 'workflows') && !e.typeOnly) found.push(`${at}: activities/ makes a value import from workflows/`);
    }
  // Workflow code: follow every value import from workflows/ and check what it reaches.
  const seen = new Set<string>();
  const walk = (file: string, path: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const e of graph.get(file) ?? []) {
      if (e.typeOnly) continue;
      const chain = [...path, e.to].join(' -> ');
      if (!e.local) {
        if (!WORKFLOW_PACKAGES.has(e.to)) found.push(`${chain}: workflow code loads the package ${e.to}`);
      } else if (under(e.to, ...NOT_IN_WORKFLOWS)) {
        found.push(`${chain}: workflow code loads a side-effecting module`);
      } else walk(e.to, [...path, e.to]);
    }
  };
  for (const file of graph.keys()) if (under(file, 'workflows')) walk(file, [file]);
  return found.sort();
}

function sourceFiles(): Map<string, string> {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' });
  const files = new Map<string, string>();
  for (const file of listed.split('\n').filter(Boolean)) {
    if (under(file, 'test') || file.endsWith('.test.ts') || file.endsWith('.d.ts')) continue;
    try {
      files.set(file, readFileSync(join(ROOT, file), 'utf8'));
    } catch {
      // listed but deleted in the working tree
    }
  }
  return files;
}

describe('import directions', () => {
  it('every non-test file imports only downward and stays under 700 lines', () => {
    expect(violations(sourceFiles())).toEqual([]);
  });

  it('catches each kind of violation (the check can fail)', () => {
    const long = 'export const x = 1;\n'.repeat(MAX_LINES + 1);
    const files = new Map([
      ['model/a.ts', "import { train } from '../activities/train.ts';\n"],
      ['activities/b.ts', "import { scheduleId } from '../workflows/w.ts';\nimport type { T } from '../workflows/w.ts';\n"],
      ['activities/ok.ts', "import { type T } from '../workflows/w.ts';\n"],
      ['workflows/w.ts', "import { x } from './pure.ts';\nimport type { Deps } from '../activities/deps.ts';\nexport type T = 1;\n"],
      ['workflows/pure.ts', "import { readFileSync } from 'node:fs';\nimport { db } from '../registry/db.ts';\n"],
      ['schemas/c.ts', "export * from '../model/config.ts';\n"],
      ['scripts/d.ts', "import { s } from '../test/helpers/chaos.ts';\n"],
      ['registry/long.ts', long],
      ['domain/e.ts', "import type { SuiteRef } from '../activities/types.ts';\n"],
      ['bench/f.ts', "import { withoutSuperseded } from '../activities/train.ts';\n"],
    ]);
    expect(violations(files)).toEqual([
      'activities/b.ts -> workflows/w.ts: activities/ makes a value import from workflows/',
      'bench/f.ts -> activities/train.ts: bench/ imports from activities/',
      'domain/e.ts -> activities/types.ts: domain/ (pure rules) imports from activities/',
      'model/a.ts -> activities/train.ts: model/ imports from activities/',
      `registry/long.ts: ${MAX_LINES + 1} lines (over ${MAX_LINES})`,
      'schemas/c.ts -> model/config.ts: schemas/ (the ground) imports from model/',
      'scripts/d.ts -> test/helpers/chaos.ts: a non-test file imports from test/',
      'workflows/w.ts -> workflows/pure.ts -> node:fs: workflow code loads the package node:fs',
      'workflows/w.ts -> workflows/pure.ts -> registry/db.ts: workflow code loads a side-effecting module',
    ]);
  });
});
