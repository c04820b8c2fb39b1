/**
 * Leader failover with real worker threads and TCP: the leader's
 * worker dies with writes in flight; a follower is promoted, keeps the table,
 * leases and token counter, takes the base port [LP-1], and every in-flight
 * write is answered exactly once. The dead leader's clients' sessions end
 * [LP-8]; the surviving followers' clients keep theirs, and their waiters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/client.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster;
beforeAll(async () => {
  t = await startCluster(2);
});
afterAll(async () => {
  await t.cluster.close();
});

const tokenOf = (reply: string): number => {
  const m = / token=(\d+)/.exec(reply);
  if (m === null) throw new Error(`no token in ${JSON.stringify(reply)}`);
  return Number(m[1]);
};

describe('the leader worker dies', () => {
  it('a follower takes over with the table, leases and tokens; in-flight writes are answered exactly once', async () => {
    const basePort = t.port('leader');
    const onLeader = await LineClient.open(basePort);
    const onF1 = await LineClient.open(t.port('follower-1'));
    const onF2 = await LineClient.open(t.port('follower-2'));
    const waiter = await LineClient.open(t.port('follower-2'));
    const burst = await LineClient.open(t.port('follower-2'));
    expect(await onLeader.ask('preempt fo-session')).toMatch(/^PreemptLock Success/);
    expect(await onLeader.ask('preempt fo-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    expect(await onF1.ask('preempt fo-f1')).toMatch(/^PreemptLock Success/);
    waiter.write('acquire fo-f1\n'); // waits on a survivor's lock, across the failover
    await eventually(async () => (await t.cluster.locks('leader')).find((r) => r.lock === 'fo-f1')?.waiters.length === 1, 'the waiter queued');
    const t0 = tokenOf(await onF2.ask('preempt fo-t0'));

    // 300 grant-and-release pairs through follower-2, and the leader dies under them.
    const N = 300;
    let batch = '';
    for (let i = 0; i < N; i++) batch += `preempt fo-b${i}\nrelease fo-b${i}\n`;
    burst.write(batch);
    await eventually(() => burst.pending.length >= 20, 'the first replies'); // some answered, the rest in flight
    await t.cluster.kill('leader');

    // Every request gets exactly one reply, in order, and none is an error.
    const tokens = new Set<number>();
    for (let i = 0; i < N; i++) {
      const grant = await burst.next(10_000);
      expect(grant).toMatch(new RegExp(`^PreemptLock Success owner=${burst.id} token=\\d+$`));
      tokens.add(tokenOf(grant));
      expect(await burst.next(10_000)).toBe('ReleaseLock Success');
    }
    expect(tokens.size).toBe(N);
    await t.logged('cluster', /^follower-\d promoted to leader in \d+ ms at seq \d+; 1 follower\(s\) relinked$/);
    await t.logged('cluster', /^follower-3 started on 127\.0\.0\.1:\d+ to replace leader$/);
    await t.logged('follower-2', /^leader link closed: .*; holding [1-9]\d* write\(s\) for up to 5000 ms for a new leader$/); // it was in flight
    await onLeader.closed; // its connection died with its node

    const lead = t.cluster.nodes.find((n) => n.role === 'leader');
    if (lead === undefined) throw new Error('no leader after failover');
    expect(t.cluster.nodes.map((n) => `${n.name} ${n.role}`).sort()).toEqual(
      ['follower-1', 'follower-2', 'follower-3'].map((n) => `${n} ${n === lead.name ? 'leader' : 'follower'}`),
    );
    expect(lead.port).toBe(basePort); // [LP-1] the leader is on the base port again
    const viaBase = await LineClient.open(basePort);
    expect(viaBase.greeting).toBe(`client_id: ${viaBase.id} node: ${lead.name} role: leader`); // its name says follower, so the greeting says its role
    expect(await viaBase.ask('whoami')).toBe(viaBase.greeting);
    const lib = await connect({ host: '127.0.0.1', port: basePort });
    expect([lib.node, lib.leads, lib.nodeLabel]).toEqual([lead.name, true, `${lead.name} (leader)`]); // what dlock client and the TUI show
    lib.destroy();
    expect(await (lead.name === 'follower-1' ? onF2 : onF1).ask('whoami')).toMatch(/^client_id: \d+ node: follower-\d$/); // [LP-3] as before on a follower

    for (const c of [onF1, onF2, viaBase]) {
      expect(await c.ask('check fo-session')).toBe('CheckLock:Free'); // [LP-8] the dead leader's client's session
      expect(await c.ask('check fo-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onLeader.id} token=\\d+ ttl=\\d+$`)); // leases survive
      expect(await c.ask('check fo-f1')).toMatch(new RegExp(`^CheckLock:Lock:${onF1.id} `)); // survivors keep their sessions
      expect(await c.ask(`check fo-b${N - 1}`)).toBe('CheckLock:Free');
    }
    // Exactly once: the burst used exactly N tokens (a grant applied twice
    // would have used more), and tokens go on from there [LP-7].
    expect(Math.max(...tokens)).toBe(t0 + N);
    expect(await onF1.ask('preempt fo-after')).toBe(`PreemptLock Success owner=${onF1.id} token=${t0 + N + 1}`);
    // The waiter queued before the failover is granted by the new leader (FIFO, LP-9).
    expect(await onF1.ask('release fo-f1')).toBe('ReleaseLock Success');
    expect(await waiter.next()).toBe(`AcquireLock Success owner=${waiter.id} token=${t0 + N + 2}`);

    // The new follower and the survivor hold the same table as the new leader.
    const rows = async (n: string): Promise<string[]> => (await t.cluster.locks(n)).map((r) => `${r.lock} ${r.owner} ${r.token} ${r.waiters.join(',')}`);
    const expected = await rows(lead.name);
    for (const n of t.cluster.nodes.filter((x) => x.role === 'follower')) await eventually(async () => JSON.stringify(await rows(n.name)) === JSON.stringify(expected), `${n.name} in step`);
    for (const c of [onF1, onF2, waiter, burst, viaBase]) c.close();
  });
});
