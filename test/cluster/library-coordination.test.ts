/**
 * The client library's shared holds [LP-20], semaphores [LP-21] and
 * several locks at once [LP-22] over TCP, on both in-process engines
 * (primary/backup and the group protocol): readLock, writeLock,
 * semaphore, lockAll and withLock hold, wait and release as the rules
 * say; each is a KeptLease (kept renewed past its ttl, `await using`,
 * resumed across a restart of its node [LP-16]); bad arguments are
 * refused before anything is sent.
 */
import { expect, it } from 'vitest';
import { connect, LockNotAcquiredError, ServerError, type DlockClient, type KeptLease } from '../../src/client/client.js';
import { onBothEngines } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

/** Settled yet? Without waiting. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  const mark = Symbol('pending');
  return (await Promise.race([p, Promise.resolve(mark)])) !== mark;
}

/** Resolves when `c` has reconnected once more. */
const reconnected = (c: DlockClient): Promise<void> =>
  new Promise((resolve) => {
    const off = c.onReconnect(() => {
      off();
      resolve();
    });
  });

onBothEngines('the library: readLock, writeLock, semaphore, lockAll, withLock [LP-20, LP-21, LP-22]', (cluster, followers) => {
  const leader = async (): Promise<string> => {
    const n = (await cluster().cluster.roles()).find((r) => r.role === 'leader');
    if (n === undefined) throw new Error('no leader');
    return n.name;
  };
  /** How many wait on `lock`, as the leader's table says. */
  const waiters = async (lock: string): Promise<number> => (await cluster().cluster.locks(await leader())).find((r) => r.lock === lock)?.waiters.length ?? 0;
  const open = (node: string): Promise<DlockClient> => connect({ host: '127.0.0.1', port: cluster().port(node) });

  it('[LP-20] readLock: two clients hold it at once, each with its own token; writeLock waits for both, then holds it alone', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const [c1, c2, cw, late] = await Promise.all([open(f1), open(f2), open(f2), open(f1)]);
    const r1 = await c1.readLock('lc-doc', { ttl: 10_000 });
    const r2 = await c2.readLock('lc-doc');
    expect(r2.token).toBeGreaterThan(r1.token); // [LP-7] each grant its own token
    expect([r1.lock, r1.locks]).toEqual(['lc-doc', ['lc-doc']]);
    expect(await c2.check('lc-doc')).toEqual({ held: true, owner: c2.id, token: r2.token, ttlLeft: null, holders: [c1.id, c2.id], limit: null });
    let written: KeptLease | null = null;
    const writing = cw.writeLock('lc-doc').then((l) => (written = l));
    await eventually(async () => (await waiters('lc-doc')) === 1, 'the writer queued');
    // A reader after the waiting writer waits behind it: not granted now.
    await expect(late.readLock('lc-doc', { timeout: 0 })).rejects.toMatchObject({ name: 'LockNotAcquiredError', lock: 'lc-doc', owner: c2.id });
    expect((await r1.release()).ok).toBe(true);
    // One reader left: the leader's table still has the writer waiting.
    expect(await waiters('lc-doc')).toBe(1);
    expect(written).toBe(null);
    expect((await r2.release()).ok).toBe(true);
    const w = await writing;
    expect(w.token).toBeGreaterThan(r2.token);
    expect(await cw.check('lc-doc')).toEqual({ held: true, owner: cw.id, token: w.token, ttlLeft: expect.any(Number) });
    expect((await w.release()).ok).toBe(true);
    expect(await cw.check('lc-doc')).toEqual({ held: false });
    for (const c of [c1, c2, cw, late]) await c.close();
  });

  it('[LP-21] semaphore(name, 2) admits two; the third waits until one releases; another limit is refused', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const [ca, cb, cc, cd] = await Promise.all([open(f1), open(f2), open(f2), open(f1)]);
    const a = await ca.semaphore('lc-pool', 2);
    const b = await cb.semaphore('lc-pool', 2, { ttl: 10_000 });
    expect(await cb.check('lc-pool')).toEqual({ held: true, owner: cb.id, token: b.token, ttlLeft: null, holders: [ca.id, cb.id], limit: 2 });
    let third: KeptLease | null = null;
    const waiting = cc.semaphore('lc-pool', 2).then((l) => (third = l));
    await eventually(async () => (await waiters('lc-pool')) === 1, 'the third queued');
    expect(third).toBe(null);
    await expect(cd.semaphore('lc-pool', 3, { timeout: 0 })).rejects.toThrow(new ServerError('lc-pool is held with limit=2'));
    expect((await a.release()).ok).toBe(true);
    const c = await waiting;
    expect(c.token).toBeGreaterThan(b.token);
    expect(await cc.check('lc-pool')).toEqual({ held: true, owner: cc.id, token: c.token, ttlLeft: null, holders: [cb.id, cc.id], limit: 2 });
    expect((await b.release()).ok).toBe(true);
    expect((await c.release()).ok).toBe(true);
    expect(await cc.check('lc-pool')).toEqual({ held: false });
    for (const x of [ca, cb, cc, cd]) await x.close();
  });

  it('[LP-22] lockAll of three names: one token, shown by check() on each; a request that overlaps waits holding none, and gets its locks once released', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const [ca, cb, cc] = await Promise.all([open(f1), open(f2), open(f2)]);
    const names = ['lc-a', 'lc-b', 'lc-c'];
    const all = await ca.lockAll(names, { ttl: 10_000, value: 'tx 1' });
    expect([all.lock, all.locks]).toEqual(['lc-a', names]);
    await cb.sync(); // [LP-17] the grant, through the other node
    for (const name of names) expect(await cb.check(name)).toEqual({ held: true, owner: ca.id, token: all.token, ttlLeft: expect.any(Number), value: 'tx 1' });
    // Not available: named in the error; nothing taken.
    await expect(cb.lockAll(['lc-d', 'lc-b'], { timeout: 0 })).rejects.toMatchObject({ name: 'LockNotAcquiredError', lock: 'lc-b', owner: ca.id });
    expect(await cb.check('lc-d')).toEqual({ held: false });
    let got: KeptLease | null = null;
    const waiting = cb.lockAll(['lc-d', 'lc-c']).then((l) => (got = l));
    await eventually(async () => (await waiters('lc-c')) === 1, 'the waiter for two queued');
    // lc-d is free, but an earlier waiter wants it: a later preempt gets owner=none [LP-22].
    expect(await cc.preempt('lc-d')).toEqual({ op: 'preempt', ok: false, owner: null });
    expect(got).toBe(null);
    expect((await all.release()).ok).toBe(true);
    const both = await waiting;
    expect(both.token).toBeGreaterThan(all.token);
    for (const name of ['lc-d', 'lc-c']) expect(await cb.check(name)).toMatchObject({ held: true, owner: cb.id, token: both.token });
    for (const name of ['lc-a', 'lc-b']) expect(await ca.check(name)).toEqual({ held: false });
    expect((await both.release()).ok).toBe(true);
    for (const name of ['lc-d', 'lc-c']) expect(await cb.check(name)).toEqual({ held: false });
    for (const x of [ca, cb, cc]) await x.close();
  });

  it('[LP-22] preempt, acquire and release with several names: all or nothing, refusals name the lock', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const [ca, cb] = await Promise.all([open(f1), open(f2)]);
    const got = await ca.preempt(['lc-p1', 'lc-p2'], { ttl: 60_000 });
    if (!got.ok) throw new Error('not granted');
    expect(await cb.preempt(['lc-p3', 'lc-p2'])).toEqual({ op: 'preempt', ok: false, owner: ca.id, lock: 'lc-p2' });
    expect(await cb.acquire(['lc-p3', 'lc-p1'], { timeout: 0 })).toEqual({ op: 'acquire', ok: false, owner: ca.id, lock: 'lc-p1' });
    expect(await ca.release(['lc-p1', 'lc-p9'])).toEqual({ op: 'release', ok: false, owner: null, lock: 'lc-p9' });
    expect(await ca.check('lc-p1')).toMatchObject({ held: true, token: got.token }); // nothing released
    expect(await ca.release(['lc-p2', 'lc-p1'])).toEqual({ op: 'release', ok: true });
    expect(await ca.check('lc-p2')).toEqual({ held: false });
    // [LP-20, LP-21] the kind on one lock
    expect(await ca.preempt('lc-p-shared', { shared: true })).toMatchObject({ ok: true, owner: ca.id });
    expect(await cb.acquire('lc-p-shared', { shared: true, timeout: 0 })).toMatchObject({ ok: true, owner: cb.id });
    await expect(cb.preempt('lc-p-shared', { limit: 2 })).rejects.toThrow(ServerError); // held without a limit
    for (const x of [ca, cb]) await x.close();
  });

  it('bad arguments are refused before anything is sent (TypeError, RangeError)', async () => {
    const [f1] = (await followers()) as [string];
    const c = await open(f1);
    const raw = await LineClient.open(cluster().port(f1));
    await expect(c.preempt('lc-bad', { shared: true, limit: 2 })).rejects.toThrow(TypeError);
    await expect(c.acquire('lc-bad', { limit: 0 })).rejects.toThrow(RangeError);
    await expect(c.acquire('lc-bad', { limit: 10_001 })).rejects.toThrow(/limit must be a whole number from 1 to 10000, got 10001/);
    await expect(c.preempt('lc-bad', { shared: true, value: 'v' })).rejects.toThrow(/a value is for a lock held by one client alone/);
    await expect(c.preempt(['lc-bad', 'lc-bad2'], { shared: true })).rejects.toThrow(/several locks are held alone/);
    await expect(c.preempt(['lc-bad', 'lc-bad'])).rejects.toThrow(/named twice/);
    await expect(c.preempt([])).rejects.toThrow(RangeError);
    await expect(c.release(Array.from({ length: 17 }, (_, i) => `lc-bad-${i}`))).rejects.toThrow(/name 1 to 16 locks, got 17/);
    await expect(c.preempt(['lc-bad', 'two words'])).rejects.toThrow(/bad lock name/);
    await expect(c.semaphore('lc-bad', 0)).rejects.toThrow(RangeError);
    await expect(c.readLock('lc-bad', { value: 'v' } as never)).rejects.toThrow(TypeError);
    await expect(c.lockAll(['lc-bad', 'lc-bad2'], { ttl: 0 })).rejects.toThrow(RangeError);
    // Nothing reached the node: the connection still answers in order, and nothing is held.
    await c.ping();
    expect(await raw.ask('check lc-bad')).toBe('CheckLock:Free');
    raw.close();
    await c.close();
  });

  it('withLock takes every kind: shared, limit, several names; releases in finally, also when fn throws', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const [ca, cb] = await Promise.all([open(f1), open(f2)]);
    const shared = await ca.withLock(
      'lc-w-shared',
      async ({ token }) => {
        // [LP-20] another client joins while fn runs
        const inner = await cb.withLock('lc-w-shared', async ({ token: t2 }) => {
          expect(await cb.check('lc-w-shared')).toEqual({ held: true, owner: cb.id, token: t2, ttlLeft: null, holders: [ca.id, cb.id], limit: null });
          return t2;
        }, { ttl: 5000, shared: true });
        expect(inner).toBeGreaterThan(token);
        return token;
      },
      { ttl: 5000, shared: true },
    );
    expect(shared).toBeGreaterThan(0);
    expect(await ca.check('lc-w-shared')).toEqual({ held: false });
    // [LP-21] limit=1: one holder; another is turned away while fn runs
    await ca.withLock('lc-w-sem', async ({ token }) => {
      expect(await cb.preempt('lc-w-sem', { limit: 1 })).toEqual({ op: 'preempt', ok: false, owner: ca.id });
      expect(await ca.check('lc-w-sem')).toMatchObject({ token, holders: [ca.id], limit: 1 });
    }, { ttl: 5000, limit: 1 });
    expect(await ca.check('lc-w-sem')).toEqual({ held: false });
    // [LP-22] several names: one token for all, all released after
    const names = ['lc-w-x', 'lc-w-y', 'lc-w-z'];
    await ca.withLock(names, async ({ token }) => {
      for (const n of names) expect(await ca.check(n)).toMatchObject({ held: true, owner: ca.id, token });
    }, { ttl: 5000 });
    for (const n of names) expect(await ca.check(n)).toEqual({ held: false });
    await expect(ca.withLock(names, () => Promise.reject(new Error('boom')), { ttl: 5000 })).rejects.toThrow('boom');
    for (const n of names) expect(await ca.check(n)).toEqual({ held: false });
    for (const x of [ca, cb]) await x.close();
  });

  it('await using: a read lock, a semaphore hold and several locks are released, and the client closed, at the end of the block', async () => {
    const [f1] = (await followers()) as [string];
    const other = await open(f1);
    {
      await using c = await open(f1);
      await using r = await c.readLock('lc-using-r');
      await using s = await c.semaphore('lc-using-s', 5);
      await using all = await c.lockAll(['lc-using-a', 'lc-using-b']);
      expect(await other.check('lc-using-r')).toMatchObject({ held: true, token: r.token, holders: [c.id] });
      expect(await other.check('lc-using-s')).toMatchObject({ held: true, token: s.token, holders: [c.id], limit: 5 });
      for (const n of all.locks) expect(await other.check(n)).toMatchObject({ held: true, owner: c.id, token: all.token });
    }
    // Released through the same node: its replies reflect them [LP-11].
    for (const n of ['lc-using-r', 'lc-using-s', 'lc-using-a', 'lc-using-b']) expect(await other.check(n)).toEqual({ held: false });
    await other.close();
  });

  it('each kind is kept renewed past its ttl', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const c = await open(f1);
    const other = await open(f2);
    const ttl = 1000;
    const r = await c.readLock('lc-renew-r', { ttl });
    const s = await c.semaphore('lc-renew-s', 3, { ttl });
    const all = await c.lockAll(['lc-renew-x', 'lc-renew-y'], { ttl });
    const from = performance.now();
    // Each would have expired after ttl without renewals; every poll finds all of them held.
    await eventually(
      async () => {
        await other.sync();
        expect(await other.check('lc-renew-r')).toEqual({ held: true, owner: c.id, token: r.token, ttlLeft: null, holders: [c.id], limit: null });
        expect(await other.check('lc-renew-s')).toEqual({ held: true, owner: c.id, token: s.token, ttlLeft: null, holders: [c.id], limit: 3 });
        for (const n of all.locks) expect(await other.check(n)).toEqual({ held: true, owner: c.id, token: all.token, ttlLeft: expect.any(Number) });
        return performance.now() - from > 3 * ttl;
      },
      'three lease lengths with every hold kept',
      10_000,
      100,
    );
    for (const l of [r, s, all]) expect(await settled(l.lost)).toBe(false);
    for (const l of [r, s, all]) expect((await l.release()).ok).toBe(true);
    for (const l of [r, s, all]) expect(await l.lost).toBe(null);
    await c.close();
    await other.close();
  });

  it('[LP-16] with reconnect, a read lock and several locks survive a restart of the node the client talks to', async () => {
    const [f1] = (await followers()) as [string];
    const nodes = cluster()
      .cluster.nodes.filter((n) => n.name !== f1)
      .map((n) => ({ port: n.port }));
    const c = await connect({ host: '127.0.0.1', port: cluster().port(f1), nodes, reconnect: true });
    const ttl = 3000;
    const r = await c.readLock('lc-rc-r', { ttl });
    const all = await c.lockAll(['lc-rc-x', 'lc-rc-y'], { ttl });
    const back = reconnected(c);
    const killedAt = performance.now();
    await cluster().cluster.kill(f1);
    await back;
    const w = await LineClient.open(cluster().port(await leader()));
    // Renewed past two lease lengths after the kill: the cluster says lc-rc-y ends later than that, and the read lock is still held.
    await eventually(
      async () => {
        const m = new RegExp(`^CheckLock:Lock:${c.id} token=${all.token} ttl=(\\d+)$`).exec(await w.ask('check lc-rc-y'));
        expect(m).not.toBe(null);
        return performance.now() + Number(m?.[1]) > killedAt + 2 * ttl;
      },
      'renewals past two lease lengths',
      15_000,
      100,
    );
    expect(await w.ask('check lc-rc-r')).toBe(`CheckLock:Shared:1 token=${r.token} owners=${c.id}`);
    expect(await settled(r.lost)).toBe(false);
    expect(await settled(all.lost)).toBe(false);
    expect((await r.release()).ok).toBe(true);
    expect((await all.release()).ok).toBe(true);
    await eventually(async () => (await w.ask('check lc-rc-x')) === 'CheckLock:Free', 'the release on the leader'); // [LP-11] answered through another node
    w.close();
    await c.close();
    await eventually(() => cluster().cluster.settled, 'the killed node back', 30_000, 50);
  }, 60_000);
});
