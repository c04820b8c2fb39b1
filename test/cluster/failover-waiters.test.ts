/**
 * With real worker threads and TCP: across a leader's
 * death every request still gets exactly one reply [LP-2] (a waiter the
 * failover itself grants is told), a waiter's deadline holds when its
 * forward is delayed on the way [LP-9], and leases granted before a
 * failover still expire on the new leader, and those restored from a data
 * dir on the restarted one [LP-8].
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClientPool, eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster | null = null;
const pool = new ClientPool();
const open = (port: number): Promise<LineClient> => pool.open(port);
afterEach(async () => {
  pool.closeAll();
  await t?.cluster.close();
  t = null;
});

const leaderNow = (c: TestCluster): string => {
  const l = c.cluster.nodes.find((n) => n.role === 'leader');
  if (l === undefined) throw new Error('no leader');
  return l.name;
};

describe('a waiter across failover', () => {
  it('granted by the new leader when the dead leader\'s session ends, it gets its reply, and its later requests are answered [LP-2, LP-9]', async () => {
    t = await startCluster(2);
    const a = await open(t.port('leader'));
    const b = await open(t.port('follower-1'));
    const c = await open(t.port('follower-2'));
    expect(await a.ask('preempt fw-L')).toMatch(/^PreemptLock Success/);
    expect(await a.ask('preempt fw-M')).toMatch(/^PreemptLock Success/);
    b.write('acquire fw-L timeout=6000\nping\n');
    c.write('acquire fw-M\nping\n'); // a waiter on the follower that is not promoted
    await eventually(async () => (await t!.cluster.locks('leader')).filter((r) => r.waiters.length === 1).length === 2, 'both waiters queued');
    await eventually(async () => (await t!.cluster.locks('follower-1')).find((r) => r.lock === 'fw-L')?.waiters.length === 1, 'follower-1 has the wait');
    await t.cluster.kill('leader');
    await t.logged('cluster', /promoted to leader/);
    // The promoted follower grants fw-L and tells b; otherwise b's
    // connection stays silent and `ping` waits behind the acquire.
    expect(await b.next(8000)).toMatch(new RegExp(`^AcquireLock Success owner=${b.id} token=\\d+$`));
    expect(await b.next()).toBe('PONG');
    expect(await c.next(8000)).toMatch(new RegExp(`^AcquireLock Success owner=${c.id} token=\\d+$`));
    expect(await c.next()).toBe('PONG');
    const lead = await open(t.port(leaderNow(t)));
    expect(await lead.ask('check fw-L')).toMatch(new RegExp(`^CheckLock:Lock:${b.id} `));
  });

  it('a deadline stamped where the client is holds when its forward arrives late: no wait is started after it [LP-9]', async () => {
    t = await startCluster(1);
    const holder = await open(t.port('leader'));
    const b = await open(t.port('follower-1'));
    expect(await holder.ask('preempt fw-D')).toMatch(/^PreemptLock Success/);
    await t.cluster.delayLinks(600, 5000);
    const sent = performance.now();
    b.write('acquire fw-D timeout=200\n');
    // The forward reaches the leader ~600 ms later, well after b's deadline.
    await t.logged('leader', new RegExp(`^Request ${b.id} via follower-1: acquire fw-D`), 5000);
    holder.write('release fw-D\n'); // applied on the leader at once
    // Before: the leader started a new 200 ms wait on arrival, and the
    // release granted the lock to b, long after b's timeout.
    expect(await b.next(5000)).toBe(`AcquireLock Timeout owner=${holder.id}`);
    expect(performance.now() - sent).toBeGreaterThanOrEqual(600); // it did cross the delayed link
    expect(await holder.next(5000)).toBe('ReleaseLock Success');
  });
});

describe('leases after failover [LP-8]', () => {
  it('a promoted leader expires leases granted before it led', async () => {
    t = await startCluster(2);
    const a = await open(t.port('leader'));
    const f = await open(t.port('follower-2'));
    expect(await a.ask('preempt fw-lease-a ttl=1500')).toMatch(/^PreemptLock Success/);
    expect(await f.ask('preempt fw-lease-f ttl=1500')).toMatch(/^PreemptLock Success/);
    expect(await f.ask('preempt fw-lease-long ttl=60000')).toMatch(/^PreemptLock Success/);
    await t.cluster.kill('leader');
    await t.logged('cluster', /promoted to leader/);
    const lead = await open(t.port(leaderNow(t)));
    expect(await lead.ask('check fw-lease-a')).toMatch(/^CheckLock:Lock:\d+ token=\d+ ttl=\d+$/); // survived the failover
    // Due 1.5 s after the grant: the new leader's timer ends them.
    await eventually(async () => (await lead.ask('check fw-lease-a')) === 'CheckLock:Free', 'fw-lease-a to expire', 5000, 50);
    await eventually(async () => (await f.ask('check fw-lease-f')) === 'CheckLock:Free', 'fw-lease-f to expire', 5000, 50);
    expect(await f.ask('check fw-lease-long')).toMatch(new RegExp(`^CheckLock:Lock:${f.id} `));
    await t.logged(leaderNow(t), /^promoted to leader/);
  });
});

describe('leases after a restart with a data dir [LP-8]', () => {
  it('a leader restored from disk expires leases granted before the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-lease-'));
    try {
      t = await startCluster(1, 0, { dataDir: dir });
      const a = await open(t.port('follower-1'));
      expect(await a.ask('preempt fw-r-short ttl=1500')).toMatch(/^PreemptLock Success/);
      expect(await a.ask('preempt fw-r-long ttl=60000')).toMatch(/^PreemptLock Success/);
      await t.cluster.close();
      t = await startCluster(1, 0, { dataDir: dir });
      await t.logged('leader', /^restored from .*: .*2 locks \(2 leases\)/);
      const b = await open(t.port('follower-1'));
      expect(await b.ask('check fw-r-short')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} token=\\d+ ttl=\\d+$`)); // restored
      await eventually(async () => (await b.ask('check fw-r-short')) === 'CheckLock:Free', 'fw-r-short to expire', 5000, 50);
      expect(await b.ask('check fw-r-long')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} `));
    } finally {
      await t?.cluster.close();
      t = null;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
