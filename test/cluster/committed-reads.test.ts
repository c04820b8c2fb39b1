/**
 * No dirty reads [LP-11], with real worker threads and TCP:
 * links between nodes are delayed, so a write is applied on the leader (and
 * then on the follower) long before it is committed. No `check`,
 * `validate`, or owner named in a `Failed` reply shows it before then, on
 * any node. A read of a lock nobody is writing is not held back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClientPool, LineClient } from '../helpers/line-client.js';

const DELAY = 400;
let t: TestCluster;
const pool = new ClientPool();
const open = (port: number): Promise<LineClient> => pool.open(port);
beforeAll(async () => {
  t = await startCluster(1);
});
afterAll(async () => {
  pool.closeAll();
  await t.cluster.close();
});

/** The reply and when it came, ms after `t0`. */
async function timed(c: LineClient, line: string, t0: number): Promise<{ reply: string; ms: number }> {
  const reply = await c.ask(line, 10_000);
  return { reply, ms: performance.now() - t0 };
}

describe('reads show committed state only [LP-11]', () => {
  it('on the leader and on a follower, a fresh grant shows only once committed; other locks answer at once', async () => {
    const writer = await open(t.port('leader'));
    const onLeader = await open(t.port('leader'));
    const rival = await open(t.port('leader'));
    const onFollower = await open(t.port('follower-1'));
    const idle = await open(t.port('follower-1'));
    expect(await writer.ask('preempt cr-idle')).toMatch(/^PreemptLock Success/);
    // Every link frame now waits DELAY ms: an entry reaches the follower after
    // DELAY, its ack the leader after 2 DELAY, and the commit the follower after 3.
    await t.cluster.delayLinks(DELAY, 10_000);
    const t0 = performance.now();
    writer.write('preempt cr-x\n');
    const reads = [timed(onLeader, 'check cr-x', t0), timed(rival, 'preempt cr-x', t0)];
    // A lock nobody is writing: answered without waiting for anything.
    const quick = await timed(idle, 'check cr-idle', t0);
    expect(quick.reply).toBe(`CheckLock:Lock:${writer.id} token=${tokenOf(quick.reply)}`);
    expect(quick.ms).toBeLessThan(DELAY);
    const granted = await writer.next(10_000);
    const grantedMs = performance.now() - t0;
    expect(granted).toMatch(new RegExp(`^PreemptLock Success owner=${writer.id} token=\\d+$`));
    expect(grantedMs).toBeGreaterThanOrEqual(2 * DELAY); // committed: on the follower, and acknowledged
    const [check, failed] = await Promise.all(reads);
    // A leader that answered these at once from applied state would show,
    // 800 ms before the writer's own reply, a grant a failover could lose.
    expect(check?.reply).toBe(`CheckLock:Lock:${writer.id} token=${tokenOf(granted)}`);
    expect(failed?.reply).toBe(`PreemptLock Failed owner=${writer.id}`);
    for (const r of [check, failed]) expect(r?.ms).toBeGreaterThanOrEqual(2 * DELAY);

    // On the follower: once the entry is applied there (after DELAY), a
    // check waits for the commit index (3 DELAY), then shows it.
    const t1 = performance.now();
    writer.write('release cr-x\n');
    await t.logged('follower-1', /^RemoveLockmap cr-x$/, 5000);
    const appliedMs = performance.now() - t1;
    const onF = await timed(onFollower, 'check cr-x', t1);
    const v = await timed(onFollower, `validate cr-x ${tokenOf(granted)}`, t1);
    expect(onF.reply).toBe('CheckLock:Free');
    expect(v.reply).toBe('ValidateLock Stale owner=none');
    expect(onF.ms).toBeGreaterThanOrEqual(3 * DELAY - 50); // not before the commit reached this follower
    expect(appliedMs).toBeLessThan(3 * DELAY); // while it was already applied here
    expect(await writer.next(10_000)).toBe('ReleaseLock Success');
  });
});

function tokenOf(reply: string): number {
  const m = / token=(\d+)/.exec(reply);
  if (m === null) throw new Error(`no token in ${JSON.stringify(reply)}`);
  return Number(m[1]);
}
