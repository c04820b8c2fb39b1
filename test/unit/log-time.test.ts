/**
 * Time without a wall clock: log time (replica/log-clock.ts) goes on from the
 * last entry applied, on the monotonic clock, and never goes back; an
 * acquire's timeout is what is left of it when it is sent (aged); a frame's
 * lateness on a link is measured against the link's fastest crossing,
 * whatever the offset between the two ends' clocks (link-delay.ts).
 */
import { describe, expect, it } from 'vitest';
import { MAX_MS } from '../../src/core/command-check.js';
import { aged, apply, createState, legacyLogTime, restore, snapshot, type Command } from '../../src/core/lock-table.js';
import { LogClock } from '../../src/replica/log-clock.js';
import { DelayFloor } from '../../src/transport/link-delay.js';
import { describeChange } from '../../src/replication/port-primary.js';
import { eventually } from '../helpers/line-client.js';

describe('log time', () => {
  it('goes on from the latest log time applied, never goes back, and stamps rise', async () => {
    const c = new LogClock();
    expect(c.now()).toBeLessThan(100);
    c.observe(1_000_000);
    const a = c.stamp();
    expect(a).toBeGreaterThanOrEqual(1_000_000);
    c.observe(5); // an older entry applied after a newer stamp: no step back
    expect(c.now()).toBeGreaterThanOrEqual(a);
    await eventually(() => c.now() >= a + 20, 'log time moves with the monotonic clock', 1000, 5);
    expect(c.stamp()).toBeGreaterThanOrEqual(a + 20);
  });

  it('the table keeps the log time of the last command that changed it, and a snapshot carries it', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: 10001, lock: 'a', ttl: 100 }, 500);
    expect(s.at).toBe(500);
    apply(s, { op: 'preempt', client: 10002, lock: 'a', ttl: null }, 900); // refused: no change
    expect(s.at).toBe(500);
    apply(s, { op: 'expire', lock: 'a', token: 1 }, 700);
    expect(s.at).toBe(700);
  });
});

describe('a table from a snapshot written before log time', () => {
  it('takes its log time from its own lease ends and deadlines, less the longest ttl: no lease ends early, and no clock is read', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: 10001, lock: 'a', ttl: 5000 }, 1_700_000_000_000); // a wall-clock time, as old entries had
    apply(s, { op: 'acquire', client: 10002, lock: 'a', ttl: null, timeout: 60_000 }, 1_700_000_000_000);
    const old = snapshot(s);
    delete old.at;
    const restored = restore(old);
    expect(restored.at).toBe(0);
    expect(legacyLogTime(restored)).toBe(1_700_000_060_000 - MAX_MS);
    expect(legacyLogTime(createState())).toBe(0);
  });
});

describe("an acquire's timeout as it is sent [LP-9]", () => {
  const acquire: Command = { op: 'acquire', client: 10001, lock: 'a', ttl: null, timeout: 500 };
  it('is what is left of it, at least 0; other commands and endless or no waits are as they were', () => {
    expect(aged(acquire, 120.7)).toEqual({ ...acquire, timeout: 380 });
    expect(aged(acquire, 900)).toEqual({ ...acquire, timeout: 0 });
    expect(aged(acquire, 0)).toBe(acquire);
    expect(aged({ ...acquire, timeout: null }, 900)).toEqual({ ...acquire, timeout: null });
    expect(aged({ ...acquire, timeout: 0 }, 900)).toEqual({ ...acquire, timeout: 0 });
    const preempt: Command = { op: 'preempt', client: 10001, lock: 'a', ttl: 5 };
    expect(aged(preempt, 900)).toBe(preempt);
  });
});

describe("a frame's lateness on a link", () => {
  it('is its crossing time less the fastest one seen, whatever the offset between the clocks', () => {
    const d = new DelayFloor();
    const offset = -123_456; // the sender's clock origin is elsewhere
    const sentNow = (): number => performance.now() + offset;
    expect(d.lateness(sentNow())).toBe(0); // no sample yet: nothing to compare with
    d.sample(sentNow()); // a quick crossing: the floor
    const late = sentNow() - 600; // sent 600 ms ago, arriving now
    d.sample(late);
    expect(d.lateness(late)).toBeGreaterThan(590);
    expect(d.lateness(late)).toBeLessThan(700);
    expect(d.lateness(sentNow())).toBeLessThan(50);
  });
});

describe('log lines that show a lease', () => {
  it("the primary/backup leader's broadcast line shows what is left of a lease in ms, not its log-time end as a time of day", () => {
    // Log time 61000 is a minute into the log, not 00:01:01 on any clock.
    expect(describeChange({ kind: 'set', lock: 'l', owner: 20001, token: 7, expiresAt: 61_000 }, 1_000)).toBe('l 20001 token=7 lease 60000 ms');
    expect(describeChange({ kind: 'set', lock: 'l', owner: 20001, token: 7, expiresAt: null }, 1_000)).toBe('l 20001 token=7');
    expect(describeChange({ kind: 'del', lock: 'l' }, 1_000)).toBe('l');
  });
});
