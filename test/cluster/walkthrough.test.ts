/**
 * The original design's walkthrough (shared/seed report, section 2),
 * replayed step by step against a real cluster: leader and two followers in
 * worker threads, three TCP clients on ports leader, follower-1, follower-2,
 * with the exact replies of shared/protocol.md.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { LineClient } from '../helpers/line-client.js';

describe('the original walkthrough', () => {
  let t: TestCluster;
  const clients: LineClient[] = [];

  beforeAll(async () => {
    t = await startCluster(2);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await t.cluster.close();
  });

  it('reproduces every step with the protocol replies', async () => {
    // Client a connects to the leader and gets id 10001 [LP-3, LP-4].
    const a = await LineClient.open(t.port('leader'));
    clients.push(a);
    expect(a.greeting).toBe('client_id: 10001 node: leader');

    // a preempts lock01; the leader broadcasts, both followers update.
    expect(await a.ask('preempt lock01')).toBe('PreemptLock Success owner=10001 token=1');
    await t.logged('leader', /^broadcast new lock_map lock01 10001/);
    await t.logged('follower-1', /^UpdateLockmap lock01 10001$/);
    await t.logged('follower-2', /^UpdateLockmap lock01 10001$/);

    // Client b connects to follower-1 and gets 20001.
    const b = await LineClient.open(t.port('follower-1'));
    clients.push(b);
    expect(b.greeting).toBe('client_id: 20001 node: follower-1');
    await t.logged('follower-1', /^Connect from 127\.0\.0\.1:\d+ client_id=20001$/);

    // b checks lock01 (answered by follower-1 itself), then fails to preempt it.
    expect(await b.ask('check lock01')).toBe('CheckLock:Lock:10001 token=1');
    expect(await b.ask('preempt lock01')).toBe('PreemptLock Failed owner=10001');

    // b preempts lock02.
    expect(await b.ask('preempt lock02')).toBe('PreemptLock Success owner=20001 token=2');
    await t.logged('follower-2', /^UpdateLockmap lock02 20001$/);

    // Client c connects to follower-2 and gets 30001; its preempt of lock02 fails.
    const c = await LineClient.open(t.port('follower-2'));
    clients.push(c);
    expect(c.greeting).toBe('client_id: 30001 node: follower-2');
    expect(await c.ask('preempt lock02')).toBe('PreemptLock Failed owner=20001');

    // b releases lock02; the leader broadcasts the removal, followers apply it.
    expect(await b.ask('release lock02')).toBe('ReleaseLock Success');
    await t.logged('leader', /^broadcast to remove lock_map lock02$/);
    await t.logged('follower-1', /^RemoveLockmap lock02$/);
    await t.logged('follower-2', /^RemoveLockmap lock02$/);

    // Now c gets lock02, and a (on the leader) sees its owner.
    expect(await c.ask('preempt lock02')).toBe('PreemptLock Success owner=30001 token=3');
    expect(await a.ask('check lock02')).toBe('CheckLock:Lock:30001 token=3');

    // Every replica holds the same lock map.
    const expected = [
      { lock: 'lock01', owner: 10001, token: 1, ttlLeft: null, waiters: [] },
      { lock: 'lock02', owner: 30001, token: 3, ttlLeft: null, waiters: [] },
    ];
    for (const node of ['leader', 'follower-1', 'follower-2']) expect(await t.cluster.locks(node)).toEqual(expected);

    // The leader logged each request and reply, like the original console.
    await t.logged('leader', /^Request 10001: preempt lock01$/);
    await t.logged('leader', /^Response 10001: PreemptLock Success owner=10001 token=1$/);
    await t.logged('follower-2', /^Response 30001: PreemptLock Success owner=30001 token=3$/);
    // and the writes forwarded to it by followers
    await t.logged('leader', /^Request 20001 via follower-1: preempt lock02$/);
    await t.logged('leader', /^Response 30001 via follower-2: PreemptLock Success owner=30001 token=3$/);
  });
});
