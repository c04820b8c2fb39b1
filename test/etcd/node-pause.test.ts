/**
 * A `dlock node` paused (SIGSTOP) past its etcd lease, while a grant for
 * one of its clients sits in the log: meanwhile the cluster ends that
 * node's sessions and gives the lock to another client. When it runs
 * again it must not hand its client the stale grant [LP-5, LP-8]: it stops
 * first (the jeopardy rule, checked where replies go out), so the client
 * gets an error or a closed connection, never `AcquireLock Success`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, killAll, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

type Node = ReadyNode & { name: string };

const ADMIN = 'pause-admin-token';

describe.skipIf(!hasEtcd)('a node paused past its lease', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['p1', 'p2']) nodes.push({ name, ...(await startNode(['--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'pause', '--first-token', '1', '--node-ttl', '3', '--http-port', '0', '--admin-token', ADMIN], process.env, 40_000)) });
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    killAll(nodes);
    await etcd?.stop();
  });

  it('hands its client no grant the cluster has since taken back', async () => {
    const [p1, p2] = nodes as [Node, Node];
    const holder = await pool.open(p1.port);
    expect(await holder.ask('preempt contested')).toMatch(/^PreemptLock Success/);
    const waiter = await pool.open(p2.port);
    const answer = waiter.ask('acquire contested timeout=60000', 60_000).catch((err: unknown) => `closed: ${(err as Error).message}`);
    const viewer = await pool.open(p1.port);
    // The acquire is in the table, waiting (the leader's admin API lists it): p2 forwarded it before it stops.
    const http = / http=(\S+)/.exec(p1.proc.out())?.[1];
    await eventually(async () => {
      const r = await fetch(`http://${http}/locks?prefix=contested`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const body = (await r.json()) as { locks: Array<{ lock: string; waiters: number[] }> };
      return body.locks.some((l) => l.lock === 'contested' && l.waiters.includes(waiter.id));
    }, 'the acquire waiting in the table', 5000, 20);
    p2.proc.child.kill('SIGSTOP');
    // The grant goes into the log while p2 is frozen, then p2's lease expires and its sessions end.
    expect(await holder.ask('release contested')).toBe('ReleaseLock Success');
    await eventually(async () => (await viewer.ask('check contested')) === 'CheckLock:Free', "p2's client's grant taken back with its session", 20_000, 100);
    expect(await viewer.ask('preempt contested')).toMatch(new RegExp(`^PreemptLock Success owner=${viewer.id} `));
    p2.proc.child.kill('SIGCONT');
    const got = await answer;
    expect(got).not.toMatch(/^AcquireLock Success/);
    expect(await viewer.ask('check contested')).toMatch(new RegExp(`^CheckLock:Lock:${viewer.id} `));
  }, 60_000);
});
