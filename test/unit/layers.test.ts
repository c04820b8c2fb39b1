/**
 * The layers (the guide's rule 8, "the TUI is a view"): nothing under src/
 * or workers/ imports ui/. The library and the nodes build and run without
 * the TUI; the one place that picks a view is the executable, ui/cli.ts,
 * which runs the command (src/cli) with the TUI as its screens.
 * And from the bottom up: the pure lock table (src/core) imports nothing
 * of ours; the line protocol (src/protocol) and the frame codec
 * (src/codec) only the core; the client-facing server (src/server:
 * connections, auth, limits, the read index) only those, reaching the node
 * it runs on through one interface (connection-host.ts); the replication
 * seam and the sequencer's duties (src/replica) only the core, and the
 * server's limits as a type. Above the seam, the role-less node
 * (src/node) and the replications (src/replication) each see the other
 * only through it: neither imports the other; what wires a node to a
 * replication is its host (src/host). No two folders import each other,
 * through any path.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The src/ folders that `file` imports (relative imports only). */
function importedFolders(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out = new Set<string>();
  for (const m of text.matchAll(/(?:from|import\(|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = join(file, '..', m[1] as string);
    const parts = target.split('/');
    if (parts[0] === 'src') out.add(parts.length > 2 ? (parts[1] as string) : '(top)');
    else out.add(parts[0] as string);
  }
  return [...out];
}

describe('layers', () => {
  for (const [folder, allowed] of [
    ['core', ['core']],
    ['protocol', ['core', 'protocol']],
    ['codec', ['core', 'codec']],
    ['server', ['core', 'protocol', 'server']],
    ['replica', ['core', 'server', 'replica']],
  ] as const) {
    it(`src/${folder} imports only ${allowed.map((a) => `src/${a}`).join(', ')}`, () => {
      const files = sources(join('src', folder));
      expect(files.length).toBeGreaterThan(0);
      const offending = files.flatMap((f) => importedFolders(f).filter((d) => !(allowed as readonly string[]).includes(d)).map((d) => `${f} imports ${d}`));
      expect(offending).toEqual([]);
    });
  }

  it('the product (src/, workers/, ui/) never imports tests, tools or benchmarks', () => {
    const files = [...sources('src'), ...sources('workers'), ...sources('ui')];
    const offending = files.flatMap((f) => importedFolders(f).filter((d) => d === 'test' || d === 'tools' || d === 'bench').map((d) => `${f} imports ${d}`));
    expect(offending).toEqual([]);
  });

  it('src/ and workers/ never import ui/', () => {
    const files = [...sources('src'), ...sources('workers')];
    expect(files.length).toBeGreaterThan(30);
    const offending = files.filter((f) => /(?:from|import\()\s*['"](?:\.\.\/)+ui\//.test(readFileSync(join(root, f), 'utf8')));
    expect(offending).toEqual([]);
  });

  it('src/node and src/replication never import each other: they meet at the seam (src/replica)', () => {
    const offending = [
      ...sources(join('src', 'node')).flatMap((f) => importedFolders(f).filter((d) => d === 'replication').map((d) => `${f} imports src/${d}`)),
      ...sources(join('src', 'replication')).flatMap((f) => importedFolders(f).filter((d) => d === 'node').map((d) => `${f} imports src/${d}`)),
    ];
    expect(offending).toEqual([]);
  });

  it('no import circle between the folders of src/ (the top-level files count as folders of their own)', () => {
    const edges = new Map<string, Set<string>>();
    for (const f of sources('src')) {
      const parts = f.split('/');
      const from = parts.length > 2 ? (parts[1] as string) : (parts[1] as string).replace(/\.ts$/, '');
      for (const m of readFileSync(join(root, f), 'utf8').matchAll(/(?:from|import\(|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const t = join(f, '..', m[1] as string).split('/');
        if (t[0] !== 'src') continue;
        const to = t.length > 2 ? (t[1] as string) : (t[1] as string).replace(/\.js$/, '');
        if (to !== from) (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
      }
    }
    // Every circle, each named once by the path that closes it.
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (n: string, path: string[]): void => {
      state.set(n, 'open');
      for (const m of edges.get(n) ?? []) {
        if (state.get(m) === 'open') circles.push([...path.slice(path.indexOf(m)), m].join(' -> '));
        else if (!state.has(m)) visit(m, [...path, m]);
      }
      state.set(n, 'done');
    };
    for (const n of [...edges.keys()].sort()) if (!state.has(n)) visit(n, [n]);
    expect(circles).toEqual([]);
  });

  it('the command (src/cli) is the top of src/: nothing else under src/ or workers/ imports it', () => {
    const files = [...sources('src'), ...sources('workers')].filter((f) => !f.startsWith(join('src', 'cli')));
    const offending = files.flatMap((f) => importedFolders(f).filter((d) => d === 'cli').map((d) => `${f} imports src/${d}`));
    expect(offending).toEqual([]);
  });
});
