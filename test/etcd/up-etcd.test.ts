/**
 * `dlock up --etcd` (step 2): the one-process layout, each node in
 * its worker thread, with etcd as the log and the election. The
 * walkthrough's greetings, replies and tokens are as on the in-process
 * engine; killing the leader's worker hands the lead to another node by
 * election, and the supervisor brings the dead node back to catch up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClientPool, eventually } from '../helpers/line-client.js';
import { run } from '../helpers/dlock-process.js';
import { Etcd3 } from 'etcd3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterStatus } from '../../src/status.js';
import { viewOnce } from '../../src/observe.js';

describe.skipIf(!hasEtcd)('dlock up --etcd', () => {
  let etcd: EtcdCluster;
  let t: TestCluster;
  const pool = new ClientPool();
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    t = await startCluster(2, 0, { etcd: { access: etcd.access, cluster: 'up' } });
  });
  afterAll(async () => {
    pool.closeAll();
    await t.cluster.close();
    await etcd.stop();
  });

  const leading = async (): Promise<string | null> => {
    for (const n of t.cluster.nodes) {
      const s = await t.cluster.stats(n.name).catch(() => null);
      if (s?.role === 'leader') return n.name;
    }
    return null;
  };

  it('the walkthrough: the same greetings, replies and tokens as in process', async () => {
    const a = await pool.open(t.port('leader'));
    expect(a.greeting).toBe('client_id: 10001 node: leader');
    expect(await a.ask('preempt lock01')).toBe('PreemptLock Success owner=10001 token=1');
    const b = await pool.open(t.port('follower-1'));
    expect(b.greeting).toBe('client_id: 20001 node: follower-1');
    // Reads come from each node's replica [LP-11]: on etcd another node applies an answered
    // write a few ms after it is in etcd, so a read through it may lag that much.
    await eventually(async () => (await b.ask('check lock01')) === 'CheckLock:Lock:10001 token=1', 'follower-1 shows lock01', 2000, 10);
    expect(await b.ask('preempt lock01')).toBe('PreemptLock Failed owner=10001');
    expect(await b.ask('preempt lock02')).toBe('PreemptLock Success owner=20001 token=2');
    const c = await pool.open(t.port('follower-2'));
    expect(c.greeting).toBe('client_id: 30001 node: follower-2');
    expect(await c.ask('preempt lock02')).toBe('PreemptLock Failed owner=20001');
    expect(await b.ask('release lock02')).toBe('ReleaseLock Success');
    expect(await c.ask('preempt lock02')).toBe('PreemptLock Success owner=30001 token=3');
    await eventually(async () => (await a.ask('check lock02')) === 'CheckLock:Lock:30001 token=3', 'the leader shows lock02', 2000, 10);
    expect(await c.ask('preempt lock03 ttl=60000')).toMatch(/^PreemptLock Success owner=30001 token=4$/);
  });

  it('the leader\'s worker dies: another node is elected, writes go on, the dead node comes back in step', async () => {
    const first = await leading();
    expect(first).not.toBeNull();
    const onIt = await pool.open(t.port(first as string));
    expect(await onIt.ask('preempt ue-session')).toMatch(/^PreemptLock Success/);
    const other = t.cluster.nodes.find((n) => n.name !== first)?.name as string;
    const w = await pool.open(t.port(other));
    const t0 = performance.now();
    await t.cluster.kill(first as string);
    // A write through another node is answered once a new leader is elected (election ttl 2 s).
    expect(await w.ask('preempt ue-after', 15_000)).toMatch(new RegExp(`^PreemptLock Success owner=${w.id} token=\\d+$`));
    const failoverMs = performance.now() - t0;
    expect(failoverMs).toBeLessThan(2000 + 10_000 + 1000); // the node lease's ttl and a second
    await eventually(async () => (await w.ask('check ue-session')) === 'CheckLock:Free', "the dead node's client's session ended", 25_000, 100);
    expect(await w.ask('check lock03')).toMatch(/^CheckLock:Lock:30001 token=4 ttl=\d+$/); // leases stay
    // The supervisor restarts the dead node; it catches up from the log.
    await t.logged('cluster', new RegExp(`^${first} restarted on `), 15_000);
    const back = await pool.open(t.port(first as string));
    expect(await back.ask('check ue-after')).toBe(`CheckLock:Lock:${w.id} token=${/token=(\d+)/.exec(await w.ask('check ue-after'))?.[1]}`);
  });

  it('dlock up --etcd refuses bad URLs and --data-dir with a clear error (a usage error: exit status 2)', async () => {
    const bad = run(['up', '--no-tui', '--etcd', 'ftp://localhost:2379']);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toMatch(/--etcd takes etcd client URLs or HOST:PORT, comma-separated \(http:\/\/HOST:PORT, or https:\/\/ for TLS\)/);
    const both = run(['up', '--no-tui', '--etcd', 'http://127.0.0.1:2379', '--data-dir', '/tmp/x']);
    expect(await both.exit).toBe(2);
    expect(both.err()).toMatch(/--etcd and --data-dir/);
    const secretAlone = run(['up', '--no-tui', '--port', '0', '--cluster-secret-file', '/tmp/x']);
    expect(await secretAlone.exit).toBe(2);
    expect(secretAlone.err()).toMatch(/--cluster-secret-file goes with --etcd/);
  });

  it('dlock up --etcd --cluster-secret-file: the workers\' node links prove the file\'s secret, and none is kept in etcd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-up-secret-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'up-etcd-cluster-secret-0123456789\n', { mode: 0o600 });
    const up = run(['up', '--no-tui', '--quiet', '--port', '0', '--followers', '1', '--etcd', etcd.endpoints.join(','), '--cluster', 'up-secret', '--cluster-secret-file', file]);
    try {
      await eventually(() => /^ready /m.test(up.out()) || up.child.exitCode !== null, 'the ready line', 30_000);
      expect(up.out(), up.err()).toMatch(/^ready /m);
      const ports = Object.fromEntries((/^ready (.*)$/m.exec(up.out())?.[1] ?? '').split(' ').map((p) => [p.split('=')[0], Number(p.split(':').pop())]));
      // A write through the follower crosses its node link to the leader (forward and reply).
      const f = await pool.open(ports['follower-1'] as number);
      await eventually(async () => (await f.ask('preempt via-link')).startsWith('PreemptLock Success'), 'a write through the follower', 20_000, 100);
      const client = new Etcd3({ hosts: etcd.endpoints });
      try {
        expect(await client.get('/dlock/up-secret/secret').string()).toBeNull();
      } finally {
        client.close();
      }
      // The views an observer asks for take the file's secret.
      const live = await clusterStatus(etcd.access, 'up-secret');
      const link = live.nodes.find((n) => n.live)?.link as string;
      const v = await viewOnce(link, { secret: 'up-etcd-cluster-secret-0123456789', tls: null }, 10);
      expect(v.locks.some((l) => l.lock === 'via-link')).toBe(true);
      f.close();
    } finally {
      up.child.kill('SIGTERM');
      await up.exit;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
