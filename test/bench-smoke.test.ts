/**
 * The bench code path, briefly: the cluster and the load generator as
 * separate processes, every scenario for a fraction of a second. Speed is
 * not asserted here (that is `npm run bench`'s job); only that it works.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('npm run bench --smoke', () => {
  it('runs every scenario against a real cluster and prints the table', () => {
    const run = fileURLToPath(new URL('../dist/bench/run.js', import.meta.url));
    const r = spawnSync(process.execPath, [run, '--smoke'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/completed no request|got errors/);
    expect(r.status).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^scenario +conns +depth +ops\/s +p50 µs +p99 µs +p99\.9 µs +errors$/);
    expect(rows).toHaveLength(7);
    for (const row of rows.slice(1)) expect(row).toMatch(/ \d+ +\d+ +\d+ +\d+ +\d+ +\d+ +0$/);
  });
});
