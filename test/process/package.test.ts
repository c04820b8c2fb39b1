/**
 * What `npm pack` ships: the library, the CLI and what they
 * load (workers, the TUI), not the tests or the benchmarks.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('npm pack', () => {
  it('ships the library and the CLI only: no dist/test, no dist/bench', () => {
    // --ignore-scripts: packing must not rebuild dist under the other tests.
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? [];
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/ui/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/workers/node-worker.js', 'dist/ui/tui.js']));
    expect(files.filter((f) => /^dist\/(test|bench)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /^(src|test|bench|ui|workers)\//.test(f))).toEqual([]); // sources stay in the repository
  });
});
