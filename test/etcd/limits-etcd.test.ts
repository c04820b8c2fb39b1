/**
 * Resource limits on etcd: --max-locks-per-client and
 * --max-waiters hold on nodes whose log is on etcd, through the leader and
 * through a follower, exactly: the leader stamps them into each preempt
 * and acquire, and every node's apply() refuses alike [LP-12].
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tooManyLocks, tooManyLocksInCluster, tooManyWaiters } from '../../src/core/lock-table.js';
import { newIdCounter } from '../../src/replica/client-ids.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/server/limits.js';
import { EtcdNode } from '../../src/host/node-etcd.js';
import { NodeLog } from '../../src/replica/node-log.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from '../helpers/line-client.js';

/**
 * Two EtcdNodes `a` (index 0) and `b` (1) of `cluster` with `limits` on
 * their own etcd member, started before the describe's tests (once one
 * leads) and stopped after; their client ports, and a pool for clients.
 */
function pairOnEtcd(cluster: string, limits: Limits): { nodes: EtcdNode[]; ports: number[]; pool: ClientPool } {
  let etcd: EtcdCluster | undefined;
  const pair = { nodes: [] as EtcdNode[], ports: [] as number[], pool: new ClientPool() };
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const [index, name] of ['a', 'b'].entries()) {
      const n = new EtcdNode({ name, index, log: new NodeLog(() => undefined, false), idCounter: newIdCounter(), firstToken: 1, limits, etcd: etcd.access, cluster, linkHost: '127.0.0.1' });
      await n.start();
      pair.ports.push(await n.listen('127.0.0.1', 0));
      pair.nodes.push(n);
    }
    await eventually(() => pair.nodes.some((n) => n.role === 'leader'), 'a leader', 10_000);
  }, 30_000);
  afterAll(async () => {
    pair.pool.closeAll();
    for (const n of pair.nodes) await n.close();
    await etcd?.stop();
  });
  return pair;
}

describe.skipIf(!hasEtcd)('limits on etcd', () => {
  const { nodes, ports, pool } = pairOnEtcd('limits', { ...DEFAULT_LIMITS, maxLocksPerClient: 3, maxWaitersPerLock: 2 });

  it('locks per client, through either node: a clear error, and nothing else changes', async () => {
    for (const port of ports) {
      const c = await pool.open(port);
      const tag = `p${port}`;
      for (let i = 0; i < 3; i++) expect(await c.ask(`preempt ${tag}-${i}${i === 0 ? ' ttl=60000' : ''}`)).toMatch(/^PreemptLock Success/);
      expect(await c.ask(`preempt ${tag}-3`)).toBe(`Error: ${tooManyLocks(3)}`);
      expect(await c.ask(`acquire ${tag}-3 timeout=100`)).toBe(`Error: ${tooManyLocks(3)}`);
      expect(await c.ask(`check ${tag}-3`)).toBe('CheckLock:Free');
      expect(await c.ask(`preempt ${tag}-1`)).toMatch(/^PreemptLock Success/); // its own: nothing new
      expect(await c.ask(`release ${tag}-2`)).toBe('ReleaseLock Success');
      expect(await c.ask(`preempt ${tag}-3`)).toMatch(/^PreemptLock Success/);
    }
  });

  it('waiters per lock: the third is refused; a no-wait acquire is not a waiter', async () => {
    const owner = await pool.open(ports[1] as number);
    expect(await owner.ask('preempt lim-w')).toMatch(/^PreemptLock Success/);
    const waiters: LineClient[] = [];
    for (const port of ports) {
      const w = await pool.open(port);
      w.write('acquire lim-w timeout=60000\n');
      waiters.push(w);
    }
    await eventually(() => nodes.every((n) => n.lockMap().find((r) => r.lock === 'lim-w')?.waiters.length === 2), 'two waiters, on every node');
    const third = await pool.open(ports[0] as number);
    expect(await third.ask('acquire lim-w timeout=60000')).toBe(`Error: ${tooManyWaiters(2)}`);
    expect(await third.ask('acquire lim-w timeout=0')).toBe(`AcquireLock Timeout owner=${owner.id}`);
    expect(await owner.ask('release lim-w')).toBe('ReleaseLock Success');
    expect(await (waiters[0] as LineClient).next()).toMatch(/^AcquireLock Success/);
  });
});

describe.skipIf(!hasEtcd)('the cluster-wide lock cap on etcd (--max-locks)', () => {
  const { nodes, ports, pool } = pairOnEtcd('caps', { ...DEFAULT_LIMITS, maxLocks: 3 });

  it('counts every client\'s locks, leases that outlive their connection too; one more is refused with the named error through either node', async () => {
    // Three clients that each take a lease and go: their leases stay, and count.
    for (const [i, port] of [ports[0], ports[1], ports[0]].entries()) {
      const c = await pool.open(port as number);
      expect(await c.ask(`preempt cap-${i} ttl=600000`)).toMatch(/^PreemptLock Success/);
      c.close();
    }
    for (const port of ports) {
      const c = await pool.open(port);
      expect(await c.ask('preempt cap-new')).toBe(`Error: ${tooManyLocksInCluster(3)}`);
      expect(await c.ask('check cap-new')).toBe('CheckLock:Free');
    }
    await eventually(() => nodes.every((n) => n.lockMap().length === 3), 'three locks on every node');
  });
});
