/**
 * `--chaos SPEC`: parsing, with a clear reason for every bad
 * spec, and the CLI refusing one with a non-zero exit.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Chaos, ChaosSpecError, parseChaos, parseDuration } from '../../src/host/threads/chaos.js';
import type { Cluster } from '../../src/host/threads/cluster.js';

const CLI = fileURLToPath(new URL('../../dist/ui/cli.js', import.meta.url));

describe('--chaos SPEC', () => {
  it('parses every action with its period and argument', () => {
    expect(parseChaos('kill-follower@3s, kill-leader@1m,delay@1.5s:20ms,drop-client@500ms')).toEqual([
      { kind: 'kill-follower', everyMs: 3000 },
      { kind: 'kill-leader', everyMs: 60_000 },
      { kind: 'delay', everyMs: 1500, delayMs: 20 },
      { kind: 'drop-client', everyMs: 500 },
    ]);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2')).toBeNull();
  });

  it('says what is wrong with a bad spec', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /--chaos is empty; expected ACTION@EVERY/],
      ['kill-follower', /"kill-follower" is malformed; expected ACTION@EVERY\[:ARG\]/],
      ['kill-follower@2x', /"2x" is not a duration of at least 100ms/],
      ['kill-follower@10ms', /"10ms" is not a duration of at least 100ms/],
      ['delay@1s', /delay needs how long, e.g\. delay@5s:20ms/],
      ['kill-leader@1s:5', /kill-leader takes no argument/],
      ['nuke@1s', /unknown action "nuke"; actions are kill-follower, kill-leader, delay, drop-client/],
    ];
    for (const [spec, re] of bad) {
      expect(() => parseChaos(spec)).toThrow(ChaosSpecError);
      expect(() => parseChaos(spec)).toThrow(re);
    }
  });

  it('dlock up refuses a bad spec before starting anything, with exit status 2 (a usage error)', () => {
    const r = spawnSync(process.execPath, [CLI, 'up', '--no-tui', '--port', '0', '--chaos', 'kill-follower@soon'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--chaos item "kill-follower@soon": "soon" is not a duration/);
    expect(r.stdout).not.toMatch(/ready/);
  });
});

describe('Chaos.stop()', () => {
  it('no kill starts after stop(), even one whose roles were being read, and stop() waits for the faults under way', async () => {
    // A stand-in for the Cluster: only what a kill fault reads, with roles() held open.
    let answerRoles: (rows: Array<{ name: string; role: 'leader' | 'follower' }>) => void = () => {};
    let asked = (): void => {};
    const rolesAsked = new Promise<void>((r) => (asked = r));
    const killed: string[] = [];
    const cluster = {
      settled: true,
      nodes: [],
      roles: () => {
        asked();
        return new Promise((r) => (answerRoles = r));
      },
      kill: (name: string) => {
        killed.push(name);
        return Promise.resolve();
      },
    } as unknown as Cluster;
    const chaos = new Chaos(cluster, [{ kind: 'kill-leader', everyMs: 100 }], () => {});
    chaos.start();
    await rolesAsked;
    let stopped = false;
    const stopping = chaos.stop().then(() => (stopped = true));
    await Promise.resolve();
    expect(stopped).toBe(false); // the fault reading roles is still under way
    answerRoles([{ name: 'leader', role: 'leader' }]);
    await stopping;
    expect(killed).toEqual([]);
    expect(chaos.counts).toEqual({});
  });
});
