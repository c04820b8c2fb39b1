/**
 * `watch` [LP-19] over TCP, on both in-process engines: answered at the
 * first committed change to the lock after the node read it, with what
 * `check` then shows; at once when the lock is not in the state named
 * (`free`, `token=`); `WatchLock Timeout` after `timeout` or at a
 * half-close; a renewal wakes no watch; later requests wait behind it;
 * bad forms get an error and change nothing.
 */
import { expect, it } from 'vitest';
import { onBothEngines } from '../helpers/cluster.js';
import { LineClient } from '../helpers/line-client.js';
import { connect } from '../../src/client/client.js';

onBothEngines('watch [LP-19]', (cluster, followers) => {
  it('answered at the first change with what check shows; later requests wait behind it; a renewal wakes nothing', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const holder = await LineClient.open(cluster().port(f1));
    const watcher = await LineClient.open(cluster().port(f2));
    // The watch waits: its answer below shows the grant made after it was sent.
    watcher.write('watch w-a\ncheck w-a\n');
    expect(watcher.pending).toEqual([]); // (not yet answered: it waits for a change, and the check behind it)
    const grant = await holder.ask('preempt w-a ttl=60000 value=10.0.0.5:8080');
    const token = /token=(\d+)/.exec(grant)?.[1];
    expect(await watcher.next()).toMatch(new RegExp(`^WatchLock:Lock:${holder.id} token=${token} ttl=\\d+ value=10\\.0\\.0\\.5:8080$`));
    expect(await watcher.next()).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=${token} `)); // waited behind it
    // A renewal keeps the holder: the next watch waits for the release.
    watcher.write(`watch w-a token=${token}\n`);
    expect(await holder.ask('renew w-a ttl=50000')).toBe(`RenewLock Success token=${token}`);
    expect(await holder.ask('release w-a')).toBe('ReleaseLock Success');
    expect(await watcher.next()).toBe('WatchLock:Free');
    holder.close();
    watcher.close();
  });

  it('free and token= answer at once when the lock is not in that state; timeout and a half-close answer WatchLock Timeout', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const holder = await LineClient.open(cluster().port(f1));
    const watcher = await LineClient.open(cluster().port(f2));
    const token = /token=(\d+)/.exec(await holder.ask('preempt w-b'))?.[1];
    expect(await watcher.ask('sync')).toBe('Sync Success');
    expect(await watcher.ask('watch w-b free')).toBe(`WatchLock:Lock:${holder.id} token=${token}`); // not free: at once
    expect(await watcher.ask(`watch w-b token=${Number(token) - 1}`)).toBe(`WatchLock:Lock:${holder.id} token=${token}`); // another grant than named
    expect(await watcher.ask(`watch w-b token=${token} holders=2`)).toBe(`WatchLock:Lock:${holder.id} token=${token}`); // one holder, not two
    expect(await watcher.ask('watch w-free free timeout=100')).toBe('WatchLock Timeout'); // free, as named: it waits
    watcher.close();
    const w2 = await LineClient.open(cluster().port(f2));
    const t0 = performance.now();
    expect(await w2.ask(`watch w-b token=${token} timeout=200`)).toBe('WatchLock Timeout');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(await w2.ask('watch w-b timeout=0')).toBe('WatchLock Timeout');
    // A half-close answers a waiting watch as a timeout, then the connection closes [LP-2].
    w2.write(`watch w-b token=${token}\n`);
    w2.socket.end();
    expect(await w2.next()).toBe('WatchLock Timeout');
    await w2.closed;
    expect(await holder.ask('check w-b')).toMatch(/^CheckLock:Lock:/); // nothing changed
    holder.close();
  });

  it('the library: watch() yields the state now, then each new one; an abort ends it', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await connect({ host: '127.0.0.1', port: cluster().port(f1) });
    const w = await connect({ host: '127.0.0.1', port: cluster().port(f2) });
    const stop = new AbortController();
    const it = w.watch('w-lib', { signal: stop.signal });
    expect((await it.next()).value).toEqual({ held: false });
    const g = await a.preempt('w-lib', { value: 'host a:80' });
    if (!g.ok) throw new Error('not granted');
    expect((await it.next()).value).toEqual({ held: true, owner: a.id, token: g.token, ttlLeft: null, value: 'host a:80' });
    await a.release('w-lib');
    expect((await it.next()).value).toEqual({ held: false });
    stop.abort(new Error('enough'));
    await expect(it.next()).rejects.toThrow('enough'); // within a slice (1 s)
    await a.close();
    await w.close();
  });

  it('the library: elect() holds leadership with a value; observe() follows who leads; a resignation hands it on', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await connect({ host: '127.0.0.1', port: cluster().port(f1) });
    const b = await connect({ host: '127.0.0.1', port: cluster().port(f2) });
    const o = await connect({ host: '127.0.0.1', port: cluster().port(f2) });
    const leaders = o.observe('svc-leader');
    expect((await leaders.next()).value).toEqual({ leader: null, token: null, value: null });
    const lead = await a.elect('svc-leader', { value: '10.0.0.5:8080', ttl: 3000 });
    expect((await leaders.next()).value).toEqual({ leader: a.id, token: lead.token, value: '10.0.0.5:8080' });
    const next = b.elect('svc-leader', { value: '10.0.0.6:8080', ttl: 3000 }); // waits in line
    await lead.release(); // resign
    const second = await next;
    let now = (await leaders.next()).value;
    if (now?.leader === null) now = (await leaders.next()).value; // the moment between (states, not events: it may go unseen)
    expect(now).toEqual({ leader: b.id, token: second.token, value: '10.0.0.6:8080' });
    expect(second.token).toBeGreaterThan(lead.token);
    await second.release();
    await leaders.return();
    for (const c of [a, b, o]) await c.close();
  });

  it('bad forms get an error naming what is wrong, and nothing changes [LP-12]', async () => {
    const c = await LineClient.open(cluster().port((await followers())[0] as string));
    const usage = 'usage: watch <lock> [free|token=<t> [holders=<k>]] [timeout=<ms>]';
    expect(await c.ask('watch')).toBe(`Error: watch needs a lock name; ${usage}`);
    expect(await c.ask('watch l free token=3')).toBe(`Error: free and token= name two states; give one; ${usage}`);
    expect(await c.ask('watch l holders=2')).toBe(`Error: holders= goes with token=; ${usage}`);
    expect(await c.ask('watch l token=0')).toBe(`Error: token must be a positive whole number, got "0"; ${usage}`);
    expect(await c.ask('watch l timeout=x')).toBe('Error: timeout must be a whole number of milliseconds from 0 to 86400000, got "x"');
    expect(await c.ask('watch l soon')).toBe(`Error: unexpected argument "soon"; ${usage}`);
    expect(await c.ask('watch l free free')).toBe(`Error: free given twice; ${usage}`);
    expect(await c.ask('ping')).toBe('PONG');
    c.close();
  });
});
