/**
 * What happens when a follower's worker dies. (Restarting it and leader
 * failover are a later issue; this is what must already hold.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { eventually, LineClient } from './helpers/line-client.js';

let t: TestCluster;
beforeAll(async () => {
  t = await startCluster(2);
});
afterAll(async () => {
  await t.cluster.close();
});

describe('a follower worker dies', () => {
  it('the supervisor logs it, writes keep being answered, and its clients\' session locks are released [LP-8]', async () => {
    const onLeader = await LineClient.open(t.port('leader'));
    const onDoomed = await LineClient.open(t.port('follower-2'));
    expect(await onDoomed.ask('preempt sup-session')).toMatch(/^PreemptLock Success/);
    expect(await onDoomed.ask('preempt sup-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    // and one of its clients waits on a lock the leader's client holds
    expect(await onLeader.ask('preempt sup-wait')).toMatch(/^PreemptLock Success/);
    const waiter = await LineClient.open(t.port('follower-2'));
    waiter.write('acquire sup-wait\n');
    await eventually(async () => (await t.cluster.locks('leader')).find((r) => r.lock === 'sup-wait')?.waiters.length === 1, 'the waiter');

    await t.cluster.kill('follower-2');
    await onDoomed.closed; // its TCP connections die with it
    await t.logged('cluster', /^follower-2 stopped unexpectedly/);
    await t.logged('follower-2', /^state down$/); // what views (the TUI) show
    await t.logged('leader', /^follower-2 link closed/);

    // The dead follower no longer holds commits back.
    expect(await onLeader.ask('preempt sup-after')).toMatch(/^PreemptLock Success/);
    // Session lock released, waiter withdrawn, lease kept.
    expect(await onLeader.ask('check sup-session')).toBe('CheckLock:Free');
    expect(await onLeader.ask('check sup-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onDoomed.id} token=\\d+ ttl=\\d+$`));
    expect((await t.cluster.locks('leader')).find((r) => r.lock === 'sup-wait')?.waiters).toEqual([]);
    // The surviving follower agrees.
    const onOther = await LineClient.open(t.port('follower-1'));
    expect(await onOther.ask('check sup-session')).toBe('CheckLock:Free');
    expect(await onOther.ask('preempt sup-session')).toMatch(/^PreemptLock Success/);
    for (const c of [onLeader, onOther, waiter]) c.close();
  });
});
