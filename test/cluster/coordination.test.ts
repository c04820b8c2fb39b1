/**
 * Shared holds [LP-20], semaphores [LP-21] and several locks at once
 * [LP-22] over TCP, on both in-process engines (primary/backup and the
 * group protocol): each reply shape through the followers, the rules'
 * errors, a waiter for several locks granted all at once when the last
 * one frees, a watch woken by a holder joining [LP-19], and every kind
 * kept across the leader thread dying.
 */
import { expect, it } from 'vitest';
import { onBothEngines } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

onBothEngines('shared holds, semaphores, several locks [LP-20, LP-21, LP-22]', (cluster, followers) => {
  const leader = async (): Promise<string> => {
    const n = (await cluster().cluster.roles()).find((r) => r.role === 'leader');
    if (n === undefined) throw new Error('no leader');
    return n.name;
  };

  it('[LP-20] readers share, a writer waits for all of them, and readers after it wait behind it', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const r1 = await LineClient.open(cluster().port(f1));
    const r2 = await LineClient.open(cluster().port(f2));
    const w = await LineClient.open(cluster().port(f2));
    const r3 = await LineClient.open(cluster().port(f1));
    const t1 = Number(/token=(\d+)/.exec(await r1.ask('preempt doc shared'))?.[1]);
    const t2 = Number(/token=(\d+)/.exec(await r2.ask('acquire doc shared timeout=0'))?.[1]);
    expect(t2).toBeGreaterThan(t1); // [LP-7] each grant its own token
    expect(await r2.ask('check doc')).toBe(`CheckLock:Shared:2 token=${t2} owners=${r1.id},${r2.id}`);
    expect(await r1.ask(`validate doc ${t1}`)).toBe('ValidateLock Valid');
    expect(await w.ask('preempt doc')).toBe(`PreemptLock Failed owner=${r2.id}`); // the newest holder
    w.write('acquire doc\n');
    await eventually(async () => (await cluster().cluster.locks(await leader())).find((r) => r.lock === 'doc')?.waiters.length === 1, 'the writer queued');
    expect(await r3.ask('preempt doc shared')).toBe(`PreemptLock Failed owner=${r2.id}`); // an earlier waiter wants it alone
    expect(await r1.ask('preempt doc')).toBe('Error: doc is held shared by this client; release it to hold it alone (no upgrade or downgrade)');
    expect(await r1.ask('release doc')).toBe('ReleaseLock Success');
    expect(await r2.ask('renew doc ttl=60000')).toBe(`RenewLock Success token=${t2}`);
    expect(await r2.ask('release doc')).toBe('ReleaseLock Success');
    expect(await w.next()).toMatch(new RegExp(`^AcquireLock Success owner=${w.id} token=\\d+$`));
    expect(await w.ask('check doc')).toMatch(new RegExp(`^CheckLock:Lock:${w.id} token=\\d+$`));
    for (const c of [r1, r2, w, r3]) c.close();
  });

  it('[LP-21] at most n hold a semaphore; every request names its limit', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await LineClient.open(cluster().port(f1));
    const b = await LineClient.open(cluster().port(f2));
    const c = await LineClient.open(cluster().port(f2));
    expect(await a.ask('preempt pool limit=2 ttl=60000')).toMatch(/^PreemptLock Success/);
    const tb = Number(/token=(\d+)/.exec(await b.ask('acquire pool limit=2'))?.[1]);
    expect(await b.ask('check pool')).toBe(`CheckLock:Held:2/2 token=${tb} owners=${a.id},${b.id}`);
    expect(await c.ask('preempt pool limit=3')).toBe('Error: pool is held with limit=2');
    expect(await c.ask('preempt pool')).toBe('Error: pool is held with limit=2');
    expect(await c.ask('acquire pool limit=2 timeout=0')).toBe(`AcquireLock Timeout owner=${b.id}`);
    expect(await c.ask('preempt solo')).toMatch(/^PreemptLock Success/);
    expect(await a.ask('preempt solo limit=2')).toBe('Error: solo is held without a limit');
    c.write('acquire pool limit=2 timeout=20000\n');
    await eventually(async () => (await cluster().cluster.locks(await leader())).find((r) => r.lock === 'pool')?.waiters.length === 1, 'the third queued');
    b.close(); // [LP-8] its session hold ends with its connection
    expect(await c.next()).toMatch(new RegExp(`^AcquireLock Success owner=${c.id} token=\\d+$`));
    await eventually(async () => /^CheckLock:Held:2\/2 token=\d+ owners=\d+,\d+$/.test(await a.ask('check pool')), 'two holders again');
    for (const x of [a, c]) x.close();
  });

  it('[LP-22] several locks: all or nothing with one token; a waiter for several holds none until all are free', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await LineClient.open(cluster().port(f1));
    const b = await LineClient.open(cluster().port(f2));
    const c = await LineClient.open(cluster().port(f2));
    const ta = Number(/token=(\d+)/.exec(await a.ask('preempt acct/1 acct/2 ttl=60000 value=tx9'))?.[1]);
    expect(await a.ask('check acct/2')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} token=${ta} ttl=\\d+ value=tx9$`));
    expect(await b.ask('preempt acct/3 acct/2')).toBe(`PreemptLock Failed owner=${a.id} lock=acct/2`);
    expect(await b.ask('check acct/3')).toBe('CheckLock:Free'); // nothing taken
    expect(await b.ask('acquire acct/3 acct/1 timeout=0')).toBe(`AcquireLock Timeout owner=${a.id} lock=acct/1`);
    expect(await b.ask('preempt acct/3 acct/3')).toMatch(/^Error: lock "acct\/3" named twice/);
    b.write('acquire acct/3 acct/1\n');
    await eventually(async () => (await cluster().cluster.locks(await leader())).find((r) => r.lock === 'acct/1')?.waiters.length === 1, 'the waiter for several queued');
    // acct/3 is free but wanted by the earlier waiter: a later preempt fails with owner=none
    expect(await c.ask('preempt acct/3')).toBe('PreemptLock Failed owner=none');
    expect(await c.ask('check acct/3')).toBe('CheckLock:Free');
    expect(await a.ask('release acct/1 acct/9')).toBe('ReleaseLock Failed owner=none lock=acct/9');
    expect(await a.ask('release acct/2 acct/1')).toBe('ReleaseLock Success');
    const granted = await b.next();
    const tb = Number(/^AcquireLock Success owner=\d+ token=(\d+)$/.exec(granted)?.[1]);
    expect(tb).toBeGreaterThan(ta);
    for (const l of ['acct/3', 'acct/1']) expect(await b.ask(`check ${l}`)).toBe(`CheckLock:Lock:${b.id} token=${tb}`);
    expect(await b.ask(`validate acct/1 ${tb}`)).toBe('ValidateLock Valid');
    expect(await b.ask('release acct/3 acct/1')).toBe('ReleaseLock Success');
    for (const x of [a, b, c]) x.close();
  });

  it('[LP-8, LP-22] a lease on several locks ends on every one of them; shared leases end each on its own', async () => {
    const [f1] = (await followers()) as [string];
    const a = await LineClient.open(cluster().port(f1));
    expect(await a.ask('preempt lease/1 lease/2 lease/3 ttl=300')).toMatch(/^PreemptLock Success/);
    expect(await a.ask('preempt lease/r shared ttl=200')).toMatch(/^PreemptLock Success/);
    expect(await a.ask('preempt lease/s limit=2 ttl=60000')).toMatch(/^PreemptLock Success/);
    await eventually(async () => {
      for (const l of ['lease/1', 'lease/2', 'lease/3', 'lease/r']) if ((await a.ask(`check ${l}`)) !== 'CheckLock:Free') return false;
      return true;
    }, 'every lease ended', 5000, 50);
    expect(await a.ask('check lease/s')).toMatch(new RegExp(`^CheckLock:Held:1/2 token=\\d+ owners=${a.id}$`)); // its ttl has not passed
    a.close();
  });

  it('[LP-19] a watch is answered when a holder joins a shared lock, and names how many with holders=', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await LineClient.open(cluster().port(f1));
    const b = await LineClient.open(cluster().port(f2));
    const watcher = await LineClient.open(cluster().port(f2));
    const ta = Number(/token=(\d+)/.exec(await a.ask('preempt watched shared ttl=60000'))?.[1]);
    await eventually(async () => (await watcher.ask('check watched')).startsWith('CheckLock:Shared:1'), 'the hold on the watcher\'s node');
    expect(await watcher.ask(`watch watched token=${ta} holders=2 timeout=5000`)).toBe(`WatchLock:Shared:1 token=${ta} owners=${a.id}`); // not that state: at once
    watcher.write(`watch watched token=${ta} holders=1 timeout=20000\n`);
    const tb = Number(/token=(\d+)/.exec(await b.ask('preempt watched shared'))?.[1]);
    expect(await watcher.next()).toBe(`WatchLock:Shared:2 token=${tb} owners=${a.id},${b.id}`);
    for (const x of [a, b, watcher]) x.close();
  });

  it('every kind survives the leader thread dying', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await LineClient.open(cluster().port(f1));
    const b = await LineClient.open(cluster().port(f2));
    await a.ask('preempt fo-shared shared ttl=60000');
    await b.ask('preempt fo-shared shared ttl=60000');
    await a.ask('preempt fo-sem limit=3 ttl=60000');
    const tm = Number(/token=(\d+)/.exec(await b.ask('preempt fo-x fo-y ttl=60000'))?.[1]);
    await eventually(async () => (await cluster().cluster.locks(f2)).filter((r) => r.lock.startsWith('fo-')).length === 4, 'all of it on the other follower');
    await cluster().cluster.kill(await leader());
    await eventually(async () => (await b.ask('preempt fo-after', 10_000)).startsWith('PreemptLock Success'), 'a write after the failover', 20_000, 100);
    expect(await b.ask('check fo-shared')).toMatch(new RegExp(`^CheckLock:Shared:2 token=\\d+ owners=${a.id},${b.id}$`));
    expect(await a.ask('check fo-sem')).toMatch(new RegExp(`^CheckLock:Held:1/3 token=\\d+ owners=${a.id}$`));
    expect(await a.ask('check fo-y')).toMatch(new RegExp(`^CheckLock:Lock:${b.id} token=${tm} ttl=\\d+$`));
    expect(await b.ask('release fo-x fo-y')).toBe('ReleaseLock Success');
    expect(await a.ask('release fo-shared')).toBe('ReleaseLock Success');
    await eventually(async () => new RegExp(`^CheckLock:Shared:1 token=\\d+ owners=${b.id}$`).test(await b.ask('check fo-shared')), 'one holder left, on the other node'); // [LP-11] that node may lag
    a.close();
    b.close();
  }, 40_000);
});
