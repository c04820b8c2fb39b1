/**
 * The bench code path, briefly: the cluster and the load generator as
 * separate processes, every scenario for a fraction of a second. Speed is
 * not asserted here (that is `npm run bench`'s job); only that it works.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const hasRedis = spawnSync('sh', ['-c', 'command -v redis-server']).status === 0;
const hasEtcd = spawnSync('sh', ['-c', 'command -v etcd']).status === 0;

describe('npm run bench --smoke', () => {
  it('runs every default scenario against a real cluster (and Redis when installed) and prints the table', () => {
    const run = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
    const r = spawnSync(process.execPath, [run, '--smoke'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.stderr).not.toMatch(/completed no request|got errors/);
    expect(r.status, r.stderr).toBe(0); // the bench's own words on why, in the failure
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^scenario +ops\/s +p50 µs +p99 µs +p99\.9 µs +errors +÷redis +cpu µs\/req$/);
    const rows = lines.filter((l) => /^(check|sync|preempt|shared|semaphore|contended|handoff|redis).* \d+ +\d+ +\d+ +\d+ +\d+/.test(l));
    expect(rows.filter((l) => !l.startsWith('redis'))).toHaveLength(13); // check-busy via followers and via the leader too, sync+check, shared, semaphore and 3 locks at once
    // ops/s, p50, p99, p99.9, errors, the ratio to Redis (2 decimals) on paired
    // rows, and the server's CPU µs per request (1 decimal; from /proc, so Linux only)
    const cpu = process.platform === 'linux' ? ' +\\d+\\.\\d' : '( +\\d+\\.\\d)?';
    for (const row of rows) expect(row.trimEnd()).toMatch(new RegExp(` [1-9]\\d* +\\d+ +\\d+ +\\d+ +0( +\\d+\\.\\d\\d)?${cpu}$`));
    for (const n of [2, 0]) {
      expect(r.stdout).toMatch(new RegExp(`^client library dlock, leader \\+ ${n} followers, 16 clients: [1-9]\\d* acquire\\+release cycles/s, p50 \\d+ µs, p99 \\d+ µs \\(\\d+\\.\\d\\dx live-mutex\\)$`, 'm'));
    }
    expect(r.stdout).toMatch(/^client library live-mutex, 16 clients: [1-9]\d* acquire\+release cycles\/s/m);
    // fault benches: a failover and a follower resync, timed
    expect(r.stdout).toMatch(/^failover, empty table: median \d+(\.\d)? ms, max \d+(\.\d)? ms over 1 trial\(s\) \[[\d.]+\]; supervisor's own figure \d+ ms$/m);
    expect(r.stdout).toMatch(/^resync, 1000 locks: median \d+(\.\d)? ms, max \d+(\.\d)? ms over 1 trial\(s\) \[[\d.]+\]; supervisor's own figure \d+ ms; slowest write on the leader meanwhile [\d.]+ ms$/m);
    expect(r.stdout).toMatch(/^memory: 2000 locks, leader \+ 2 followers: RSS \d+ MiB -> \d+ MiB, -?\d+ bytes per lock$/m);
    if (hasRedis) {
      expect(rows.filter((l) => l.startsWith('redis'))).toHaveLength(4); // and Redis with 2 replicas and WAIT
      expect(r.stdout).toMatch(/^replicated writes, each answered once every replica has it: dlock preempt\+release via followers, c50 d1 [1-9]\d* req\/s vs Redis \+ 2 replicas with WAIT [1-9]\d* req\/s: \d+\.\d\dx$/m);
      // the three headline dlock rows carry a ratio to their Redis partner
      expect(rows.filter((l) => / \d+\.\d\d( +\d+\.\d)?$/.test(l.trimEnd()))).toHaveLength(3);
    } else {
      expect(r.stderr).toMatch(/redis-server is not installed/);
    }
  });

  it.skipIf(!hasEtcd)('--scenario watch: a release heard by a watcher, against an etcd watch seeing a delete [LP-19]', () => {
    const run = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
    const r = spawnSync(process.execPath, [run, '--scenario', 'watch', '--smoke'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^release -> watcher's reply, dlock up \(through followers\): p50 \d+\.\d\d ms, p99 \d+\.\d\d ms over 20 rounds$/m);
    expect(r.stdout).toMatch(/^delete -> watch event, etcd \(3 members, the etcd3 client\): p50 \d+\.\d\d ms, p99 \d+\.\d\d ms over 20 rounds$/m);
  });

  it.skipIf(!hasEtcd)('--scenario etcd: dlock nodes on a 3-member etcd against etcd\'s lock recipe, txn pairs and gets; failover and rejoin times', () => {
    const run = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
    const r = spawnSync(process.execPath, [run, '--scenario', 'etcd', '--smoke'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^dlock preempt\+release through the nodes \(pairs\/s\) +[1-9]\d* +\d+\/\d+ per request *$/m);
    expect(r.stdout).toMatch(/^etcd lock recipe, acquire\+release \(pairs\/s\) +[1-9]\d* +\d+\/\d+ per pair +\d+\.\d$/m);
    expect(r.stdout).toMatch(/^etcd bare txn create-if-absent \+ delete \(pairs\/s\) +[1-9]\d* +\d+\/\d+ per pair +\d+\.\d$/m);
    expect(r.stdout).toMatch(/^dlock check through the nodes \(reads\/s\) +[1-9]\d* /m);
    expect(r.stdout).toMatch(/^etcd linearizable get \(reads\/s\) +[1-9]\d* +\d+\/\d+ +\d+\.\d$/m);
    expect(r.stdout).toMatch(/^errors: 0; 50 connections each/m);
    expect(r.stdout).toMatch(/^failover \(leader's process killed -9 → first write answered via another node\): median \d+ ms of \d+ ms$/m);
    expect(r.stdout).toMatch(/^rejoin after kill -9: not measured \(--smoke\)$/m);
    expect(r.stdout).toMatch(/^rejoin after a clean stop .*: median \d+ ms of \d+ ms$/m);
  }, 150_000);
});
