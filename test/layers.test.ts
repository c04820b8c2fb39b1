/**
 * The layers (the guide's rule 8, "the TUI is a view"): nothing under src/
 * or workers/ imports ui/. The library and the nodes build and run without
 * the TUI; the one place that picks a view is the command, ui/cli.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('layers', () => {
  it('src/ and workers/ never import ui/', () => {
    const files = [...sources('src'), ...sources('workers')];
    expect(files.length).toBeGreaterThan(30);
    const offending = files.filter((f) => /(?:from|import\()\s*['"](?:\.\.\/)+ui\//.test(readFileSync(join(root, f), 'utf8')));
    expect(offending).toEqual([]);
  });
});
