/**
 * What happens when a follower's worker dies: the supervisor
 * logs it and restarts it on the same port; the new worker resyncs from a
 * snapshot; the old connections' sessions end [LP-8], leases survive, and
 * client ids are never reused [LP-4]. Leader failover is not covered here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

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

    // Restarted on the same port, resynced from a snapshot: the lease is
    // there, the released session lock is not, and a new client's id is new.
    const port = t.port('follower-2');
    await t.logged('follower-2', /^state restarting$/);
    await t.logged('cluster', new RegExp(`^follower-2 restarted on 127\\.0\\.0\\.1:${port} in \\d+ ms$`));
    await t.logged('follower-2', /^snapshot at seq \d+: \d+ locks$/);
    const reborn = await LineClient.open(port);
    expect(reborn.greeting).toMatch(/ node: follower-2$/);
    expect(reborn.id).toBeGreaterThan(waiter.id); // [LP-4] never reused
    expect(await reborn.ask('check sup-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onDoomed.id} token=\\d+ ttl=\\d+$`));
    expect(await reborn.ask('check sup-session')).toBe(`CheckLock:Lock:${onOther.id} token=${await tokenOf(onLeader, 'sup-session')}`);
    // and it takes writes again, which every replica sees
    expect(await reborn.ask('preempt sup-reborn')).toMatch(new RegExp(`^PreemptLock Success owner=${reborn.id} token=\\d+$`));
    expect(await onOther.ask('check sup-reborn')).toMatch(new RegExp(`^CheckLock:Lock:${reborn.id} `));
    const rows = async (n: string): Promise<string[]> => (await t.cluster.locks(n)).map((r) => `${r.lock} ${r.owner} ${r.token} ${r.waiters.join(',')}`);
    expect(await rows('follower-2')).toEqual(await rows('leader'));
    for (const c of [onLeader, onOther, waiter, reborn]) c.close();
  });

  it('an uncaught error restarts it too; quick repeated deaths are restarted with a growing delay', async () => {
    const port = t.port('follower-1');
    const before = (t.logs.get('cluster') ?? []).length;
    await t.cluster.crash('follower-1', 'test');
    await t.logged('cluster', /^follower-1 stopped unexpectedly: injected crash: test$/);
    await t.logged('cluster', new RegExp(`^follower-1 restarted on 127\\.0\\.0\\.1:${port} in \\d+ ms$`));
    // Dying again right after each start: still restarted, soon after a back-off.
    const restarts = (): number => (t.logs.get('cluster') ?? []).slice(before).filter((l) => /^follower-1 restarted on/.test(l)).length;
    const backedOff = (): boolean => (t.logs.get('cluster') ?? []).some((l) => /^follower-1 died [23] times soon after starting; restarting in (200|1000) ms$/.test(l));
    for (let n = 2; n <= 3 && !backedOff(); n++) {
      await eventually(() => restarts() === n - 1, `restart ${n - 1}`);
      await t.cluster.crash('follower-1', `again ${n}`);
      await t.logged('cluster', new RegExp(`^follower-1 stopped unexpectedly: injected crash: again ${n}$`));
    }
    expect(backedOff()).toBe(true);
    await t.logged('follower-1', /^state restarting$/);
    await eventually(() => restarts() >= 2 && (t.logs.get('follower-1') ?? []).at(-1) !== 'state restarting', 'the restart after the back-off');
    await t.logged('cluster', /^follower-1 restarted on/);
    const c = await LineClient.open(port);
    expect(await c.ask('ping')).toBe('PONG');
    expect(await c.ask('preempt after-crash')).toMatch(/^PreemptLock Success/);
    c.close();
  });
});

async function tokenOf(c: LineClient, lock: string): Promise<string> {
  const m = / token=(\d+)/.exec(await c.ask(`check ${lock}`));
  if (m === null) throw new Error(`${lock} is not held`);
  return m[1] as string;
}
