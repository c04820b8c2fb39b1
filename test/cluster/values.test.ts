/**
 * Values [LP-18] over TCP, on both in-process engines (primary/backup and
 * the group protocol): set by the grant and shown by `check` through
 * every node, last; kept by the holder's repeat without a value (LP-6),
 * refused with another; gone with the hold; a waiter's set when it is
 * granted; and kept across the leader's thread dying.
 */
import { expect, it } from 'vitest';
import { onBothEngines } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';
import { otherValue } from '../../src/core/lock-table.js';
import { connect } from '../../src/client/client.js';

onBothEngines('values [LP-18]', (cluster, followers) => {
  /** Who leads, as each node says. */
  const leader = async (): Promise<string> => {
    const n = (await cluster().cluster.roles()).find((r) => r.role === 'leader');
    if (n === undefined) throw new Error('no leader');
    return n.name;
  };

  it('set by the grant, shown last by check on every node, kept by a repeat without one, refused with another, gone with the hold', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const holder = await LineClient.open(cluster().port(f1));
    const reader = await LineClient.open(cluster().port(f2));
    expect(await holder.ask('preempt leader/svc ttl=60000 value=10.0.0.5:8080')).toMatch(new RegExp(`^PreemptLock Success owner=${holder.id} token=\\d+$`));
    const token = Number(/token=(\d+)/.exec(await holder.ask('check leader/svc'))?.[1]);
    expect(await holder.ask('check leader/svc')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=${token} ttl=\\d+ value=10\\.0\\.0\\.5:8080$`));
    await eventually(async () => / value=10\.0\.0\.5:8080$/.test(await reader.ask('check leader/svc')), 'the value on another node');
    // [LP-6] the holder again: without a value it keeps it, with the same it succeeds, with another it is refused and nothing changes.
    expect(await holder.ask('acquire leader/svc')).toBe(`AcquireLock Success owner=${holder.id} token=${token}`);
    expect(await holder.ask('preempt leader/svc value=10.0.0.5:8080')).toBe(`PreemptLock Success owner=${holder.id} token=${token}`);
    expect(await holder.ask('preempt leader/svc ttl=1 value=10.0.0.6:8080')).toBe(`Error: ${otherValue('leader/svc', '10.0.0.5:8080')}`);
    expect(await holder.ask('check leader/svc')).toMatch(/ ttl=\d{4,} value=10\.0\.0\.5:8080$/); // not even the ttl changed
    // Another client is answered as without a value.
    expect(await reader.ask('preempt leader/svc value=x')).toBe(`PreemptLock Failed owner=${holder.id}`);
    // A waiter's value is set when it is granted.
    reader.write('acquire leader/svc value=10.0.0.7:8080\n');
    await eventually(async () => (await cluster().cluster.locks(await leader())).find((r) => r.lock === 'leader/svc')?.waiters.length === 1, 'the waiter queued');
    expect(await holder.ask('release leader/svc')).toBe('ReleaseLock Success');
    expect(await reader.next()).toMatch(new RegExp(`^AcquireLock Success owner=${reader.id} token=\\d+$`));
    expect(await reader.ask('check leader/svc')).toMatch(new RegExp(`^CheckLock:Lock:${reader.id} token=\\d+ value=10\\.0\\.0\\.7:8080$`));
    expect(await reader.ask('release leader/svc')).toBe('ReleaseLock Success');
    await eventually(async () => (await holder.ask('check leader/svc')) === 'CheckLock:Free', 'the lock and its value gone everywhere');
    expect(await holder.ask('preempt leader/svc')).toMatch(/^PreemptLock Success/);
    // Through another node: after a sync [LP-17], which a read there may otherwise lag (LP-11 allows it).
    expect(await reader.ask('sync')).toBe('Sync Success');
    expect(await reader.ask('check leader/svc')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=\\d+$`)); // no value left from before
    holder.close();
    reader.close();
  });

  it('a bad value gets an error naming the rule, and nothing changes [LP-12]', async () => {
    const c = await LineClient.open(cluster().port((await followers())[0] as string));
    expect(await c.ask(`preempt v-bad value=${'x'.repeat(1025)}`)).toMatch(/^Error: bad value "x{40}…": expected 1 to 1024 bytes with no whitespace or control characters \(percent-encode the rest\)$/);
    expect(await c.ask('preempt v-bad value=')).toMatch(/^Error: bad value "": expected 1 to 1024 bytes/);
    expect(await c.ask('acquire v-bad value=a value=b')).toMatch(/^Error: option value given twice/);
    expect(await c.ask('release v-bad value=a')).toMatch(/^Error: unknown option "value": release takes no options/);
    expect(await c.ask(`preempt v-bad value=${'é'.repeat(512)}`)).toBe('PreemptLock Success owner=' + c.id + ' token=' + /token=(\d+)/.exec(await c.ask('preempt v-bad'))?.[1]); // 1024 bytes
    expect(await c.ask('check v-bad')).toMatch(/ value=é{512}$/);
    expect(await c.ask('check nothing-here')).toBe('CheckLock:Free');
    c.close();
  });

  it('the library percent-encodes a value and check() gives it back as it was given', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await connect({ host: '127.0.0.1', port: cluster().port(f1) });
    const b = await connect({ host: '127.0.0.1', port: cluster().port(f2) });
    const value = 'host a:80 · 100% up\tnow';
    expect(await a.preempt('v-lib', { ttl: 60_000, value })).toMatchObject({ ok: true });
    await eventually(async () => (await b.check('v-lib')).held, 'the grant on the other node');
    expect(await b.check('v-lib')).toMatchObject({ held: true, owner: a.id, value });
    const raw = await LineClient.open(cluster().port(f2));
    expect(await raw.ask('check v-lib')).toMatch(/ value=host%20a:80%20·%20100%25%20up%09now$/); // what nc shows
    await expect(a.preempt('v-lib2', { value: '' })).rejects.toThrow(RangeError);
    await expect(a.preempt('v-lib2', { value: ' '.repeat(400) })).rejects.toThrow(/value must be 1 to 1024 bytes once percent-encoded, got 1200/);
    raw.close();
    await a.close();
    await b.close();
  });

  it('kept across the leader thread dying: the new leader and the other follower show it', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const holder = await LineClient.open(cluster().port(f1));
    expect(await holder.ask('preempt v-failover ttl=60000 value=primary-was-here')).toMatch(/^PreemptLock Success/);
    await eventually(async () => (await cluster().cluster.locks(f2)).some((r) => r.lock === 'v-failover'), 'the lease on the other follower');
    await cluster().cluster.kill(await leader());
    const reader = await LineClient.open(cluster().port(f2));
    await eventually(async () => (await reader.ask('preempt v-after-failover', 10_000)).startsWith('PreemptLock Success'), 'a write after the failover', 20_000, 100);
    expect(await reader.ask('check v-failover')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=\\d+ ttl=\\d+ value=primary-was-here$`));
    expect(await holder.ask('check v-failover')).toMatch(/ value=primary-was-here$/);
    holder.close();
    reader.close();
  }, 40_000);
});
