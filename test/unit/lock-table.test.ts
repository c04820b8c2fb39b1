/**
 * The pure lock table: each rule by example, then properties over random
 * operation sequences (fast-check).
 */
import fc from 'fast-check';
import { replaysFromSnapshot, unchangedWhenNoChange, viaCodec } from '../helpers/table-properties.js';
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../../src/codec/frame.js';
import { apply, check, createState, otherValue, restore, snapshot, snapshotPart, SUPERSEDED, validate, type Command, type Outcome, type TableState } from '../../src/core/lock-table.js';

/** A snapshot as a link or a snapshot file carries it. */

/** Secret hashes as the table keeps them (SHA-256, hex): two different ones. */
const HA = 'a'.repeat(64);
const HX = 'b'.repeat(64);

const A = 10001;
const B = 20001;
const C = 30001;

function run(state: TableState, cmd: Command, now = 1000): Outcome {
  return apply(state, cmd, now);
}

describe('preempt [LP-5, LP-6, LP-7]', () => {
  it('grants a free lock with a new token and refuses others', () => {
    const s = createState();
    expect(run(s, { op: 'preempt', client: A, lock: 'lock01', ttl: null }).reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 1 });
    const refused = run(s, { op: 'preempt', client: B, lock: 'lock01', ttl: null });
    expect(refused.reply).toEqual({ op: 'preempt', ok: false, owner: A });
    expect(refused.changed).toBe(false);
    expect(run(s, { op: 'preempt', client: B, lock: 'lock02', ttl: null }).reply).toEqual({ op: 'preempt', ok: true, owner: B, token: 2 });
  });

  it('[LP-6] the owner asking again gets the same token; ttl turns it into a lease', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    const again = run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    expect(again.reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 1 });
    expect(again.changed).toBe(false);
    const leased = run(s, { op: 'preempt', client: A, lock: 'l', ttl: 500 }, 2000);
    expect(leased.reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 1 });
    expect(leased.changed).toBe(true);
    expect(check(s, 'l', 2100)).toEqual({ held: true, owner: A, token: 1, ttlLeft: 400 });
    // now a lease: disconnect does not release it [LP-8]
    run(s, { op: 'disconnect', client: A });
    expect(check(s, 'l', 2100).held).toBe(true);
  });

  it('[LP-6] locks are not counted: one release frees a twice-preempted lock', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    expect(run(s, { op: 'release', client: A, lock: 'l' }).reply).toEqual({ op: 'release', ok: true });
    expect(check(s, 'l', 0)).toEqual({ held: false });
  });
});

describe('release and renew [LP-10]', () => {
  it('only the owner releases; others learn the owner', () => {
    const s = createState();
    expect(run(s, { op: 'release', client: A, lock: 'l' }).reply).toEqual({ op: 'release', ok: false, owner: null });
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    expect(run(s, { op: 'release', client: B, lock: 'l' }).reply).toEqual({ op: 'release', ok: false, owner: A });
    expect(check(s, 'l', 0).held).toBe(true);
  });

  it('renew by the owner keeps the token and sets the lease from now; others fail', () => {
    const s = createState();
    expect(run(s, { op: 'renew', client: A, lock: 'l', ttl: 10 }).reply).toEqual({ op: 'renew', ok: false, owner: null });
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    expect(run(s, { op: 'renew', client: B, lock: 'l', ttl: 10 }).reply).toEqual({ op: 'renew', ok: false, owner: A });
    expect(run(s, { op: 'renew', client: A, lock: 'l', ttl: 300 }, 5000).reply).toEqual({ op: 'renew', ok: true, token: 1 });
    expect(check(s, 'l', 5000)).toMatchObject({ ttlLeft: 300 });
    // [LP-8] renewing a session lock makes it a lease
    run(s, { op: 'disconnect', client: A });
    expect(check(s, 'l', 5000).held).toBe(true);
  });
});

describe('sessions [LP-8]', () => {
  it('disconnect releases session locks, keeps leases, withdraws the waiter', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'a', ttl: null });
    run(s, { op: 'preempt', client: A, lock: 'b', ttl: 1000 });
    run(s, { op: 'preempt', client: B, lock: 'c', ttl: null });
    expect(run(s, { op: 'acquire', client: A, lock: 'c', ttl: null, timeout: null }).reply).toBeNull();
    const out = run(s, { op: 'disconnect', client: A });
    expect(out.changes).toEqual([{ kind: 'del', lock: 'a' }]);
    expect(check(s, 'a', 0).held).toBe(false);
    expect(check(s, 'b', 0).held).toBe(true);
    expect(s.locks.get('c')?.waiters).toEqual([]);
    expect(s.waiting.size).toBe(0);
    // B releasing c now wakes nobody
    expect(run(s, { op: 'release', client: B, lock: 'c' }).wakes).toEqual([]);
  });

  it('a released session lock passes to the next waiter with a new token', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: null });
    const out = run(s, { op: 'disconnect', client: A });
    expect(out.wakes).toEqual([{ client: B, reply: { op: 'acquire', ok: true, owner: B, token: 2 } }]);
    expect(check(s, 'l', 0)).toMatchObject({ owner: B, token: 2 });
  });
});

describe('acquire [LP-9]', () => {
  it('grants at once when free, or is idempotent for the owner', () => {
    const s = createState();
    expect(run(s, { op: 'acquire', client: A, lock: 'l', ttl: null, timeout: 0 }).reply).toEqual({ op: 'acquire', ok: true, owner: A, token: 1 });
    expect(run(s, { op: 'acquire', client: A, lock: 'l', ttl: null, timeout: null }).reply).toEqual({ op: 'acquire', ok: true, owner: A, token: 1 });
  });

  it('timeout=0 does not wait', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    const out = run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 0 });
    expect(out.reply).toEqual({ op: 'acquire', ok: false, owner: A });
    expect(out.changed).toBe(false);
  });

  it('waiters are granted first come, first served, each with a larger token', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    for (const c of [B, C, 40001]) expect(run(s, { op: 'acquire', client: c, lock: 'l', ttl: null, timeout: null }).waits).toEqual({ client: c, lock: 'l' });
    const order: number[] = [];
    let owner = A;
    for (let i = 0; i < 3; i++) {
      const out = run(s, { op: 'release', client: owner, lock: 'l' });
      expect(out.wakes).toHaveLength(1);
      const w = out.wakes[0];
      if (w === undefined || !('token' in w.reply)) throw new Error('no grant');
      order.push(w.client);
      expect(w.reply.token).toBe(2 + i);
      owner = w.client;
    }
    expect(order).toEqual([B, C, 40001]);
  });

  it('a waiter granted with ttl gets a lease from the grant time', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: 700, timeout: null }, 1000);
    run(s, { op: 'release', client: A, lock: 'l' }, 3000);
    expect(check(s, 'l', 3000)).toEqual({ held: true, owner: B, token: 2, ttlLeft: 700 });
  });

  it('a waiter keeps its deadline (acquire time + timeout) in the table and in snapshots, so a new leader can arm it', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: A, lock: 'l', ttl: null }, 1000);
    apply(s, { op: 'acquire', client: B, lock: 'l', ttl: 30, timeout: 500 }, 1200);
    apply(s, { op: 'acquire', client: C, lock: 'l', ttl: null, timeout: null }, 1300);
    const expected = [
      { client: B, ttl: 30, deadline: 1700 },
      { client: C, ttl: null, deadline: null },
    ];
    expect(s.locks.get('l')?.waiters).toEqual(expected);
    expect(restore(viaCodec(snapshot(s))).locks.get('l')?.waiters).toEqual(expected);
  });

  it('timeout withdraws the waiter and reports the owner; a stale timeout is a no-op', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 50 });
    run(s, { op: 'acquire', client: C, lock: 'l', ttl: null, timeout: null });
    const t = run(s, { op: 'timeout', client: B, lock: 'l' });
    expect(t.reply).toEqual({ op: 'acquire', ok: false, owner: A });
    expect(s.locks.get('l')?.waiters.map((w) => w.client)).toEqual([C]);
    const stale = run(s, { op: 'timeout', client: B, lock: 'l' });
    expect(stale).toMatchObject({ reply: null, changed: false });
  });

  it('the timer of an earlier wait does not end a later wait of the same client on the same lock [LP-9]', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null }, 0);
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 1000, deadline: 1000 }, 0); // waits until 1000
    run(s, { op: 'release', client: A, lock: 'l' }, 100); // B granted
    run(s, { op: 'release', client: B, lock: 'l' }, 200);
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null }, 300);
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 5000, deadline: 5400 }, 400); // waits until 5400
    // The first wait's timer fires at 1000: the second wait goes on.
    expect(run(s, { op: 'timeout', client: B, lock: 'l', deadline: 1000 }, 1000)).toMatchObject({ reply: null, changed: false });
    expect(s.waiting.get(B)).toBe('l');
    expect(run(s, { op: 'timeout', client: B, lock: 'l', deadline: 5400 }, 5400).reply).toEqual({ op: 'acquire', ok: false, owner: A });
    expect(s.waiting.has(B)).toBe(false);
  });

  it('resumable clients [LP-16]: a resume needs the right hash, ends the old connection\'s sessions, and makes its disconnect stale', () => {
    const s = createState();
    run(s, { op: 'session', client: A, hash: HA });
    run(s, { op: 'preempt', client: A, lock: 'sess', ttl: null });
    run(s, { op: 'preempt', client: A, lock: 'lease', ttl: 60_000 });
    expect(run(s, { op: 'resume', client: B, target: A, hash: HX, node: 2 }).reply).toEqual({ op: 'resume', ok: false, busy: false });
    expect(run(s, { op: 'resume', client: C, target: 99, hash: HA, node: 2 }).reply).toEqual({ op: 'resume', ok: false, busy: false });
    run(s, { op: 'preempt', client: C, lock: 'c-own', ttl: null });
    expect(run(s, { op: 'resume', client: C, target: A, hash: HA, node: 2 }).reply).toEqual({ op: 'resume', ok: false, busy: true });
    // A's old connection is still open: resuming ends its session lock, not its lease.
    const ok = run(s, { op: 'resume', client: B, target: A, hash: HA, node: 2 });
    expect(ok.reply).toEqual({ op: 'resume', ok: true, client: A, gen: 1 });
    expect(check(s, 'sess', 1000)).toEqual({ held: false });
    expect(check(s, 'lease', 1000)).toMatchObject({ held: true, owner: A });
    run(s, { op: 'preempt', client: A, lock: 'sess2', ttl: null });
    // The old connection's close (generation 0) ends nothing of the new one's.
    expect(run(s, { op: 'disconnect', client: A })).toMatchObject({ changed: false });
    expect(check(s, 'sess2', 1000)).toMatchObject({ held: true, owner: A });
    // The new one's close does; the secret stays while a lease is held, and goes with the last one.
    run(s, { op: 'disconnect', client: A, gen: 1 });
    expect(check(s, 'sess2', 1000)).toEqual({ held: false });
    expect(s.sessions.get(A)).toMatchObject({ open: false, gen: 1, node: 2 });
    // It survives a snapshot, through the codec.
    const copy = restore(viaCodec(snapshot(s)));
    expect(copy.sessions.get(A)).toEqual(s.sessions.get(A));
    run(s, { op: 'release', client: A, lock: 'lease' });
    expect(s.sessions.has(A)).toBe(false);
    expect(run(s, { op: 'resume', client: B, target: A, hash: HA, node: 2 }).reply).toEqual({ op: 'resume', ok: false, busy: false });
  });

  it('session ttl=<ms> [LP-16]: a client holding nothing stays resumable for ttl of log time after its last connection ends, and no longer', () => {
    const s = createState();
    run(s, { op: 'session', client: A, hash: HA, ttl: 5000 }, 1000);
    run(s, { op: 'disconnect', client: A }, 2000);
    expect(s.sessions.get(A)).toMatchObject({ open: false, ttl: 5000, until: 7000 });
    // It survives a snapshot, through the codec.
    expect(restore(viaCodec(snapshot(s))).sessions.get(A)).toEqual(s.sessions.get(A));
    expect(run(s, { op: 'resume', client: B, target: A, hash: HA, node: 2 }, 6999).reply).toEqual({ op: 'resume', ok: true, client: A, gen: 1 });
    expect(s.sessions.get(A)).toMatchObject({ open: true, until: null });
    // The ttl counts again from the next close; past it, the pair resumes nothing.
    run(s, { op: 'disconnect', client: A, gen: 1 }, 8000);
    expect(run(s, { op: 'resume', client: C, target: A, hash: HA, node: 2 }, 13_000).reply).toEqual({ op: 'resume', ok: false, busy: false });
    // A `session` without ttl takes it back: the client is forgotten at its close, as before.
    const t = createState();
    run(t, { op: 'session', client: A, hash: HA, ttl: 5000 });
    run(t, { op: 'session', client: A, hash: HA });
    run(t, { op: 'disconnect', client: A });
    expect(t.sessions.has(A)).toBe(false);
    // A lease outliving the ttl keeps it resumable until the lease goes.
    const u = createState();
    run(u, { op: 'session', client: A, hash: HA, ttl: 100 }, 1000);
    run(u, { op: 'preempt', client: A, lock: 'l', ttl: 60_000 }, 1000);
    run(u, { op: 'disconnect', client: A }, 1000);
    expect(run(u, { op: 'resume', client: B, target: A, hash: HA, node: 2 }, 5000).reply).toMatchObject({ op: 'resume', ok: true });
  });

  it('session ttl=<ms>: sessions that can no longer be resumed are dropped from memory as more come [LP-16]', () => {
    const s = createState();
    for (let i = 0; i < 3000; i++) {
      run(s, { op: 'session', client: 100_000 + i, hash: HA, ttl: 10 }, 1000 + i);
      run(s, { op: 'disconnect', client: 100_000 + i }, 1000 + i);
    }
    // Each is resumable for 10 ms after its close: at most the last few thousand are kept, not every one ever made.
    expect(s.sessions.size).toBeLessThan(1100);
    expect(run(s, { op: 'resume', client: B, target: 100_000 + 2999, hash: HA, node: 2 }, 4000).reply).toMatchObject({ op: 'resume', ok: true });
    expect(run(s, { op: 'resume', client: C, target: 100_000, hash: HA, node: 2 }, 4000).reply).toEqual({ op: 'resume', ok: false, busy: false });
  });

  it('a write from the connection a client was resumed away from is refused; the resumed one acts for it [LP-16]', () => {
    const s = createState();
    run(s, { op: 'session', client: A, hash: HA });
    expect(run(s, { op: 'preempt', client: A, lock: 'lease', ttl: 60_000, gen: 0 }).reply).toMatchObject({ op: 'preempt', ok: true });
    run(s, { op: 'resume', client: B, target: A, hash: HA, node: 2 });
    // The old connection (generation 0) is still open until its node applies the resume: its writes no longer act for A.
    for (const cmd of [
      { op: 'release', client: A, lock: 'lease', gen: 0 },
      { op: 'renew', client: A, lock: 'lease', ttl: 5, gen: 0 },
      { op: 'preempt', client: A, lock: 'other', ttl: null, gen: 0 },
      { op: 'acquire', client: A, lock: 'other', ttl: null, timeout: null, gen: 0 },
    ] as const) {
      expect(run(s, cmd)).toMatchObject({ changed: false, reply: { op: 'refused', message: SUPERSEDED } });
    }
    expect(check(s, 'lease', 1000)).toMatchObject({ held: true, owner: A });
    expect(check(s, 'other', 1000)).toEqual({ held: false });
    // The resumed connection (generation 1) does; a write with no generation (a client without a session) is as before.
    expect(run(s, { op: 'renew', client: A, lock: 'lease', ttl: 60_000, gen: 1 }).reply).toMatchObject({ op: 'renew', ok: true });
    expect(run(s, { op: 'release', client: A, lock: 'lease', gen: 1 }).reply).toEqual({ op: 'release', ok: true });
    expect(run(s, { op: 'preempt', client: C, lock: 'c', ttl: null }).reply).toMatchObject({ op: 'preempt', ok: true });
  });

  it('a waiter whose deadline has passed is answered as timed out, not granted, even before its timeout command', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null }, 0);
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 5, deadline: 5 }, 1);
    run(s, { op: 'acquire', client: C, lock: 'l', ttl: null, timeout: 100, deadline: 100 }, 2);
    // The release comes at 11 ms, before the leader's timer for B has run.
    const out = run(s, { op: 'release', client: A, lock: 'l' }, 11);
    expect(out.wakes.map((w) => w.reply)).toEqual([
      { op: 'acquire', ok: true, owner: C, token: 2 },
      { op: 'acquire', ok: false, owner: C },
    ]);
    expect(s.waiting.has(B)).toBe(false);
    expect(run(s, { op: 'timeout', client: B, lock: 'l' }, 12)).toMatchObject({ reply: null, changed: false }); // its timer, late: nothing
  });

  it('the deadline travels in the command: applied after it, an acquire of a held lock does not wait [LP-9]', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null }, 0);
    // Stamped at 100 with timeout 200 where the client is; applied at 400.
    const late = run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: 200, deadline: 300 }, 400);
    expect(late).toMatchObject({ reply: { op: 'acquire', ok: false, owner: A }, changed: false, waits: null });
    const onTime = run(s, { op: 'acquire', client: C, lock: 'l', ttl: null, timeout: 200, deadline: 300 }, 250);
    expect(onTime.waits).toEqual({ client: C, lock: 'l' });
    expect(s.locks.get('l')?.waiters[0]?.deadline).toBe(300);
  });

  it('a client cannot wait on two locks at once', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'x', ttl: null });
    run(s, { op: 'preempt', client: A, lock: 'y', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'x', ttl: null, timeout: null });
    expect(run(s, { op: 'acquire', client: B, lock: 'y', ttl: null, timeout: null }).reply).toEqual({ op: 'acquire', ok: false, owner: A });
  });
});

describe('leases: expiry is the leader timer\'s command', () => {
  it('expire frees a due lease and hands it on; early or stale expires do nothing', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: 100 }, 1000);
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: null }, 1000);
    expect(run(s, { op: 'expire', lock: 'l', token: 1 }, 1099).changed).toBe(false);
    expect(run(s, { op: 'expire', lock: 'l', token: 7 }, 5000).changed).toBe(false);
    const out = run(s, { op: 'expire', lock: 'l', token: 1 }, 1100);
    expect(out.wakes).toEqual([{ client: B, reply: { op: 'acquire', ok: true, owner: B, token: 2 } }]);
  });

  it('a renewed lease does not expire at its old deadline', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: 100 }, 1000);
    run(s, { op: 'renew', client: A, lock: 'l', ttl: 100 }, 1050);
    expect(run(s, { op: 'expire', lock: 'l', token: 1 }, 1100).changed).toBe(false);
    expect(run(s, { op: 'expire', lock: 'l', token: 1 }, 1150).changed).toBe(true);
  });
});

describe('floor [LP-7]', () => {
  it('raises the next token and never lowers it; grants after it are at least the floor', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'a', ttl: null });
    expect(apply(s, { op: 'floor', token: 2 ** 33 }, 0).changed).toBe(true);
    expect(run(s, { op: 'preempt', client: B, lock: 'b', ttl: null }).reply).toEqual({ op: 'preempt', ok: true, owner: B, token: 2 ** 33 });
    // A lower floor (a stale or repeated one) changes nothing.
    expect(apply(s, { op: 'floor', token: 2 ** 32 }, 0).changed).toBe(false);
    expect(run(s, { op: 'preempt', client: A, lock: 'c', ttl: null }).reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 2 ** 33 + 1 });
  });
});

describe('limits: logged once, kept by the table', () => {
  it('grants after a limits entry are refused past them, on any replica alike; a grant stamped with its own limits uses those', () => {
    const s = createState();
    expect(s.limits).toBe(null);
    run(s, { op: 'preempt', client: A, lock: 'a1', ttl: null });
    run(s, { op: 'preempt', client: A, lock: 'a2', ttl: null });
    expect(apply(s, { op: 'limits', limits: { maxLocksPerClient: 2, maxWaitersPerLock: 1 } }, 0).changed).toBe(true);
    // The same limits again change nothing.
    expect(apply(s, { op: 'limits', limits: { maxLocksPerClient: 2, maxWaitersPerLock: 1 } }, 0).changed).toBe(false);
    expect(run(s, { op: 'preempt', client: A, lock: 'a3', ttl: null }).reply).toEqual({ op: 'refused', message: 'this client holds 2 locks, the limit; release some first' });
    expect(run(s, { op: 'preempt', client: A, lock: 'a1', ttl: null }).reply).toMatchObject({ op: 'preempt', ok: true }); // its own lock: nothing new
    run(s, { op: 'acquire', client: B, lock: 'a1', ttl: null, timeout: null });
    expect(run(s, { op: 'acquire', client: C, lock: 'a1', ttl: null, timeout: null }).reply).toEqual({ op: 'refused', message: '1 clients already wait on this lock, the limit; try again later' });
    // An older entry's own limits win over the table's.
    expect(run(s, { op: 'preempt', client: A, lock: 'a3', ttl: null, limits: { maxLocksPerClient: 5, maxWaitersPerLock: 1 } }).reply).toMatchObject({ op: 'preempt', ok: true });
    // Through a snapshot, as a replica that catches up loads them.
    const copy = restore(viaCodec(snapshot(s)));
    expect(copy.limits).toEqual({ maxLocksPerClient: 2, maxWaitersPerLock: 1 });
    expect(run(copy, { op: 'preempt', client: A, lock: 'a4', ttl: null }).reply).toMatchObject({ op: 'refused' });
  });

  it('a snapshot whose limits are not limits does not load', () => {
    const s = createState();
    apply(s, { op: 'limits', limits: { maxLocksPerClient: 2, maxWaitersPerLock: 1 } }, 0);
    const wire = JSON.parse(JSON.stringify(encodeSnapshot(snapshot(s))));
    expect(() => decodeSnapshot({ ...wire, limits: { maxLocksPerClient: 0, maxWaitersPerLock: 1 } })).toThrow(/snapshot limits needs maxLocksPerClient/);
    expect(() => decodeSnapshot({ ...wire, limits: 'none' })).toThrow(/snapshot limits is not an object/);
  });
});

describe('validate [LP-7]', () => {
  it('is Valid only for the current grant\'s token', () => {
    const s = createState();
    expect(validate(s, 'l', 1)).toEqual({ valid: false, owner: null, token: null });
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    expect(validate(s, 'l', 1)).toEqual({ valid: true });
    run(s, { op: 'release', client: A, lock: 'l' });
    run(s, { op: 'preempt', client: B, lock: 'l', ttl: null });
    expect(validate(s, 'l', 1)).toEqual({ valid: false, owner: B, token: 2 });
  });
});

describe('sync [LP-17]', () => {
  it('changes nothing and is answered Sync: its place in the log is the point', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: null });
    const before = JSON.stringify(encodeSnapshot(snapshot(s)));
    expect(run(s, { op: 'sync', client: B })).toEqual({ reply: { op: 'sync' }, changed: false, wakes: [], changes: [], waits: null });
    expect(JSON.stringify(encodeSnapshot(snapshot(s)))).toBe(before);
  });
});

describe('values [LP-18]', () => {
  it('a grant sets the value; check shows it; it is gone with the hold', () => {
    const s = createState();
    expect(run(s, { op: 'preempt', client: A, lock: 'leader/svc', ttl: null, value: '10.0.0.5:8080' }).reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 1 });
    expect(check(s, 'leader/svc', 1000)).toEqual({ held: true, owner: A, token: 1, ttlLeft: null, value: '10.0.0.5:8080' });
    run(s, { op: 'release', client: A, lock: 'leader/svc' });
    expect(check(s, 'leader/svc', 1000)).toEqual({ held: false });
    expect(s.values.size).toBe(0);
    // A grant without a value shows none, even where an earlier hold had one.
    run(s, { op: 'preempt', client: B, lock: 'leader/svc', ttl: null });
    expect(check(s, 'leader/svc', 1000)).toEqual({ held: true, owner: B, token: 2, ttlLeft: null });
  });

  it('the holder asking again: without a value keeps it, with the same succeeds, with another is refused and nothing changes [LP-6]', () => {
    const s = createState();
    run(s, { op: 'acquire', client: A, lock: 'l', ttl: null, timeout: null, value: 'v1' });
    expect(run(s, { op: 'preempt', client: A, lock: 'l', ttl: 500 }).reply).toEqual({ op: 'preempt', ok: true, owner: A, token: 1 });
    expect(check(s, 'l', 1000)).toMatchObject({ value: 'v1', ttlLeft: 500 });
    expect(run(s, { op: 'acquire', client: A, lock: 'l', ttl: null, timeout: 0, value: 'v1' }).reply).toEqual({ op: 'acquire', ok: true, owner: A, token: 1 });
    const before = JSON.stringify(encodeSnapshot(snapshot(s)));
    const other = run(s, { op: 'preempt', client: A, lock: 'l', ttl: 900, value: 'v2' });
    expect(other).toMatchObject({ reply: { op: 'refused', message: otherValue('l', 'v1') }, changed: false });
    expect(JSON.stringify(encodeSnapshot(snapshot(s)))).toBe(before); // not even the ttl
    // One held without a value: a repeat with one is refused too.
    run(s, { op: 'preempt', client: A, lock: 'plain', ttl: null });
    expect(run(s, { op: 'acquire', client: A, lock: 'plain', ttl: null, timeout: null, value: 'x' }).reply).toEqual({ op: 'refused', message: otherValue('plain', undefined) });
    // Anyone else is answered as before, value or not.
    expect(run(s, { op: 'preempt', client: B, lock: 'l', ttl: null, value: 'v9' }).reply).toEqual({ op: 'preempt', ok: false, owner: A });
  });

  it("a waiter's value is set when it is granted; expiry, revoke and a session's end drop it", () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'l', ttl: 100, value: 'a' }, 0);
    run(s, { op: 'acquire', client: B, lock: 'l', ttl: null, timeout: null, value: 'b' }, 0);
    run(s, { op: 'acquire', client: C, lock: 'l', ttl: 50, timeout: null }, 0);
    const expired = run(s, { op: 'expire', lock: 'l', token: 1 }, 100);
    expect(expired.wakes).toEqual([{ client: B, reply: { op: 'acquire', ok: true, owner: B, token: 2 } }]);
    expect(check(s, 'l', 100)).toMatchObject({ owner: B, value: 'b' });
    run(s, { op: 'disconnect', client: B }, 100); // its session lock ends [LP-8]; C, with no value, is next
    expect(check(s, 'l', 100)).toEqual({ held: true, owner: C, token: 3, ttlLeft: 50 });
    run(s, { op: 'release', client: C, lock: 'l' }, 100);
    run(s, { op: 'preempt', client: A, lock: 'r', ttl: null, value: 'gone-soon' }, 100);
    run(s, { op: 'revoke', lock: 'r' }, 100);
    expect(s.values.size).toBe(0);
  });

  it('snapshots carry values, the waiters\' too, through the codec and in parts', () => {
    const s = createState();
    for (let i = 0; i < 6; i++) run(s, { op: 'preempt', client: A, lock: `k${i}`, ttl: null, ...(i % 2 === 0 ? { value: `v${i}` } : {}) });
    run(s, { op: 'acquire', client: B, lock: 'k2', ttl: null, timeout: null, value: 'next' });
    run(s, { op: 'release', client: A, lock: 'k0' }); // a hole in the table's order
    const whole = snapshot(s);
    expect(whole.values?.length).toBe(2);
    for (const per of [1, 2, 6]) {
      const into = createState();
      for (let from = 0; from < whole.count; from += per) restore(viaCodec(snapshotPart(whole, from, from + per)), into);
      expect(into.values).toEqual(s.values);
      expect(snapshot(into)).toEqual(whole);
      run(into, { op: 'release', client: A, lock: 'k2' });
      expect(check(into, 'k2', 1000)).toMatchObject({ owner: B, value: 'next' });
    }
  });

  it('the codec refuses a snapshot whose values are not lock values or name no lock it holds', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'k', ttl: null, value: 'v' });
    const w = JSON.parse(JSON.stringify(encodeSnapshot(snapshot(s))));
    for (const values of [[[1, 'v']], [[0, 'has space']], [[0, '']], [[0, 'v'], [0, 'w']], 'v', [[0]]]) {
      expect(() => decodeSnapshot({ ...w, values })).toThrow(/malformed snapshot values/);
    }
    expect(() => decodeSnapshot({ ...w, waiters: [[0, [[B, null, null, 'bad value']]]] })).toThrow(/malformed snapshot waiters/);
  });
});

// ---- properties over random operation sequences ----

const clients = [10001, 10002, 20001, 30001];
const locks = ['a', 'b', 'c'];
const cmdArb: fc.Arbitrary<Command> = fc.oneof(
  // [LP-18] values on some grants: two, so that a holder's repeat sometimes names another.
  fc.record({ op: fc.constant('preempt' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...locks), ttl: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }), value: fc.constantFrom('v1', 'v2') }, { requiredKeys: ['op', 'client', 'lock', 'ttl'] }),
  fc.record(
    {
      op: fc.constant('acquire' as const),
      client: fc.constantFrom(...clients),
      lock: fc.constantFrom(...locks),
      ttl: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
      timeout: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null }),
      value: fc.constantFrom('v1', 'v2'),
    },
    { requiredKeys: ['op', 'client', 'lock', 'ttl', 'timeout'] },
  ),
  fc.record({ op: fc.constant('release' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...locks) }),
  fc.record({ op: fc.constant('renew' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...locks), ttl: fc.integer({ min: 1, max: 50 }) }),
  fc.record({ op: fc.constant('disconnect' as const), client: fc.constantFrom(...clients) }),
  fc.record({ op: fc.constant('expire' as const), lock: fc.constantFrom(...locks), token: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('timeout' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...locks) }),
  fc.record({ op: fc.constant('floor' as const), token: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ op: fc.constant('limits' as const), limits: fc.record({ maxLocksPerClient: fc.integer({ min: 1, max: 3 }), maxWaitersPerLock: fc.integer({ min: 1, max: 2 }) }) }),
);
// Each step: a command and how much time passes before it.
const stepsArb = fc.array(fc.tuple(cmdArb, fc.integer({ min: 0, max: 20 })), { maxLength: 120 });

/** Steps of handoffs: waits (with or without a value), releases, session ends and expiries on two locks. */
const handoffStepsArb = fc.array(
  fc.tuple(
    fc.oneof(
      fc.record({ op: fc.constant('acquire' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom('a', 'b'), ttl: fc.option(fc.constant(30), { nil: null }), timeout: fc.constant(null), value: fc.constantFrom('v1', 'v2') }, { requiredKeys: ['op', 'client', 'lock', 'ttl', 'timeout'] }),
      fc.record({ op: fc.constant('release' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom('a', 'b') }),
      fc.record({ op: fc.constant('disconnect' as const), client: fc.constantFrom(...clients) }),
      fc.record({ op: fc.constant('expire' as const), lock: fc.constantFrom('a', 'b'), token: fc.integer({ min: 1, max: 30 }) }),
    ),
    fc.integer({ min: 0, max: 20 }),
  ),
  { maxLength: 80 },
);

function checkInvariants(s: TableState): void {
  const waitingSeen = new Map<number, string>();
  for (const [name, e] of s.locks) {
    expect(e.token).toBeLessThan(s.nextToken);
    const ws = e.waiters.map((w) => w.client);
    expect(new Set(ws).size).toBe(ws.length); // no client queued twice
    expect(ws).not.toContain(e.owner);
    for (const c of ws) {
      expect(waitingSeen.has(c)).toBe(false); // waits on one lock at most
      waitingSeen.set(c, name);
    }
  }
  expect(new Map([...s.waiting].sort())).toEqual(new Map([...waitingSeen].sort()));
  // Each client's session locks (kept as it goes) are exactly its locks without a lease [LP-8].
  expect(sessionsOf(s)).toEqual(sessionsFromViews(s));
  for (const c of s.locks.sessionOwners()) expect(s.locks.sessionCount(c)).toBe(s.locks.sessionLocks(c).length);
  // The per-client counts behind --max-locks-per-client match the table.
  const owned = new Map<number, number>();
  for (const e of s.locks.values()) owned.set(e.owner, (owned.get(e.owner) ?? 0) + 1);
  expect(new Map([...s.owned].sort())).toEqual(new Map([...owned].sort()));
  // [LP-18] a value only on a held lock.
  for (const lock of s.values.keys()) expect(s.locks.find(lock)).not.toBe(-1);
}

/** Each client's session locks as the table lists them, sorted. */
const sessionsOf = (st: TableState): Map<number, string[]> =>
  new Map(
    st.locks
      .sessionOwners()
      .sort((a, b) => a - b)
      .map((c) => [c, st.locks.sessionLocks(c).sort()]),
  );

/** The same, worked out from the locks themselves: the ones without a lease, by owner. */
function sessionsFromViews(st: TableState): Map<number, string[]> {
  const by = new Map<number, string[]>();
  for (const [name, e] of st.locks) if (e.expiresAt === null) by.set(e.owner, [...(by.get(e.owner) ?? []), name]);
  return new Map([...by].sort((a, b) => a[0] - b[0]).map(([c, names]) => [c, names.sort()]));
}

describe('properties', () => {
  it('[LP-7] every grant carries a token larger than all before it; invariants hold after every step', () => {
    fc.assert(
      fc.property(stepsArb, (steps) => {
        const s = createState();
        let now = 0;
        let maxToken = 0;
        /** Each waiting client's deadline, as its acquire set it. */
        const deadlines = new Map<number, number | null>();
        for (const [cmd, dt] of steps) {
          now += dt;
          const ownedBefore = 'client' in cmd ? (s.owned.get(cmd.client) ?? 0) : 0;
          const limits = s.limits;
          const out = apply(s, cmd, now);
          if (out.waits !== null && cmd.op === 'acquire') deadlines.set(cmd.client, cmd.timeout === null ? null : now + cmd.timeout);
          // The table's limits: a grant of a new lock takes no client to more than maxLocksPerClient.
          if (limits !== null && (s.owned.get('client' in cmd ? cmd.client : 0) ?? 0) > ownedBefore && out.reply?.op !== 'refused' && (cmd.op === 'preempt' || cmd.op === 'acquire')) {
            expect(ownedBefore).toBeLessThan(limits.maxLocksPerClient);
          }
          for (const w of out.wakes) {
            // [LP-9] a waiter is never granted at or after its deadline: it is answered as timed out.
            const d = deadlines.get(w.client);
            expect(d).not.toBeUndefined();
            if (w.reply.op === 'acquire' && w.reply.ok) expect(d === null || (d as number) > now).toBe(true);
            else expect(d !== null && (d as number) <= now).toBe(true);
            deadlines.delete(w.client);
          }
          const fresh: number[] = out.wakes.flatMap((w) => ('token' in w.reply ? [w.reply.token] : []));
          const r = out.reply;
          if (r !== null && r.ok && (r.op === 'preempt' || r.op === 'acquire')) {
            if (r.token <= maxToken) {
              // [LP-6] only the owner's repeat request may see an old token: its own.
              expect(cmd.op === 'preempt' || cmd.op === 'acquire').toBe(true);
              if (cmd.op === 'preempt' || cmd.op === 'acquire') expect(check(s, cmd.lock, now)).toMatchObject({ owner: cmd.client, token: r.token });
            } else {
              fresh.unshift(r.token);
            }
          }
          for (const t of fresh) {
            expect(t).toBeGreaterThan(maxToken); // [LP-7]
            maxToken = t;
          }
          expect(s.nextToken).toBeGreaterThan(maxToken);
          if (!out.changed) expect(out.changes).toEqual([]);
          checkInvariants(s);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("[LP-18] a lock's value is its grant's, for as long as the hold lasts, whoever asks again meanwhile", () => {
    fc.assert(
      // Besides the general mix, one where clients queue with values and holders let go often.
      fc.property(fc.oneof(stepsArb, handoffStepsArb), (steps) => {
        const s = createState();
        let now = 0;
        /** The value each held lock's grant set (absent: none), by token; and each waiting client's. */
        const granted = new Map<number, string | undefined>();
        const waitingValue = new Map<number, string | undefined>();
        for (const [cmd, dt] of steps) {
          now += dt;
          const out = apply(s, cmd, now);
          if (out.waits !== null && cmd.op === 'acquire') waitingValue.set(cmd.client, cmd.value);
          const r = out.reply;
          if (r !== null && r.ok && (r.op === 'preempt' || r.op === 'acquire') && (cmd.op === 'preempt' || cmd.op === 'acquire') && !granted.has(r.token)) granted.set(r.token, cmd.value);
          for (const w of out.wakes) if (w.reply.op === 'acquire' && w.reply.ok) granted.set(w.reply.token, waitingValue.get(w.client));
          for (const [lock, e] of s.locks) expect(s.values.get(lock)).toBe(granted.get(e.token));
          for (const lock of s.values.keys()) expect(s.locks.find(lock)).not.toBe(-1);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a snapshot cut into parts and loaded part after part is the whole table', () => {
    const s = createState(7);
    for (let i = 0; i < 10; i++) run(s, { op: 'preempt', client: i % 2 === 0 ? A : B, lock: `p${i}`, ttl: i % 3 === 0 ? 500 : null });
    run(s, { op: 'acquire', client: C, lock: 'p4', ttl: 9, timeout: 100 });
    run(s, { op: 'acquire', client: C + 1, lock: 'p4', ttl: null, timeout: null });
    run(s, { op: 'acquire', client: C + 2, lock: 'p9', ttl: null, timeout: 5 });
    const whole = snapshot(s);
    for (const per of [1, 3, 4, 10, 11]) {
      const into = createState();
      for (let from = 0; from < whole.names.length; from += per) restore(viaCodec(snapshotPart(whole, from, from + per)), into);
      expect(snapshot(into)).toEqual(whole);
      expect(sessionsOf(into)).toEqual(sessionsOf(s));
      expect(into.waiting).toEqual(s.waiting);
      expect(into.owned).toEqual(s.owned);
    }
  });

  it('replaying the log on a replica restored from a snapshot taken midway reaches the same state', () => {
    fc.assert(
      fc.property(stepsArb, fc.nat(), (steps, cutSeed) => replaysFromSnapshot(steps, cutSeed, checkInvariants)),
      { numRuns: 300 },
    );
  });

  it('commands that report no change leave the state untouched', () => {
    fc.assert(
      fc.property(stepsArb, (steps) => unchangedWhenNoChange(steps)),
      { numRuns: 200 },
    );
  });
});

describe("each client's session locks, as the table keeps them [LP-8]", () => {
  it('stay right through churn, leases taken, positions moving (compaction) and a bulk load', () => {
    const s = createState();
    // Client A takes and releases one lock at a time: its list fills with stale entries.
    for (let i = 0; i < 500; i++) {
      apply(s, { op: 'preempt', client: A, lock: `one${i}`, ttl: null }, 0);
      apply(s, { op: 'release', client: A, lock: `one${i}` }, 0);
    }
    // B holds many; most are released, some become leases, and a grant then compacts the table.
    for (let i = 0; i < 3000; i++) apply(s, { op: 'preempt', client: B, lock: `b${i}`, ttl: null }, 0);
    expect(s.locks.sessionCount(B)).toBe(3000);
    for (let i = 0; i < 2900; i++) apply(s, { op: 'release', client: B, lock: `b${i}` }, 0);
    for (let i = 2900; i < 2950; i++) apply(s, { op: 'renew', client: B, lock: `b${i}`, ttl: 100 }, 0);
    apply(s, { op: 'preempt', client: C, lock: 'c0', ttl: null }, 0); // holes > live: compacts
    expect(sessionsOf(s)).toEqual(sessionsFromViews(s));
    expect(s.locks.sessionCount(B)).toBe(50);
    expect(s.locks.sessionOwners().sort()).toEqual([B, C]);
    // A disconnect releases exactly the session locks, in name order, and keeps the leases.
    const out = apply(s, { op: 'disconnect', client: B }, 1);
    expect(out.changes.map((c) => c.lock)).toEqual(Array.from({ length: 50 }, (_, i) => `b${2950 + i}`).sort());
    expect(s.locks.sessionCount(B)).toBe(0);
    expect(s.locks.size).toBe(50 + 1);
    // A replica loaded from a snapshot lists the same.
    const replica = restore(viaCodec(snapshot(s)));
    expect(sessionsOf(replica)).toEqual(sessionsOf(s));
  });
});

describe("the table's lease clock (nextLeaseEnd, dueLeases): what the leader expires by", () => {
  /** Every lease in the table, by end time, from the read-only views. */
  const leasesOf = (s: TableState): Array<[number, string, number]> =>
    [...s.locks]
      .filter(([, v]) => v.expiresAt !== null)
      .map(([lock, v]) => [v.expiresAt as number, lock, v.token] as [number, string, number])
      .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1));

  it('always names the first lease end, through grants, renewals, releases and expiries; due leases come out in end order', () => {
    fc.assert(
      fc.property(stepsArb, fc.boolean(), (steps, askEarly) => {
        const s = createState();
        // Asked from the start, the heap is kept up step by step; asked only
        // at the end, it is built from the rows then. Both must agree with the views.
        let now = 0;
        for (const [cmd, dt] of steps) {
          now += dt;
          apply(s, cmd, now);
          if (askEarly) expect(s.locks.nextLeaseEnd()).toBe(leasesOf(s)[0]?.[0] ?? Infinity);
        }
        const expected = leasesOf(s);
        expect(s.locks.nextLeaseEnd()).toBe(expected[0]?.[0] ?? Infinity);
        const cut = expected.length === 0 ? 0 : (expected[expected.length >> 1] as [number, string, number])[0];
        const due = s.locks.dueLeases(cut);
        expect(due.map(([, token]) => token).sort((a, b) => a - b)).toEqual(
          expected
            .filter(([at]) => at <= cut)
            .map(([, , token]) => token)
            .sort((a, b) => a - b),
        );
        const ends = due.map(([lock]) => s.locks.get(lock)?.expiresAt as number);
        expect(ends).toEqual([...ends].sort((a, b) => a - b));
        // Taken off: what is left starts after the cut.
        expect(s.locks.nextLeaseEnd()).toBe(expected.find(([at]) => at > cut)?.[0] ?? Infinity);
      }),
      { numRuns: 300 },
    );
  });

  it('a lease renewed back to an earlier end is due once, not once per time it had that end', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: A, lock: 'back', ttl: 10 }, 0);
    expect(s.locks.nextLeaseEnd()).toBe(10); // builds the heap: renewals now push entries
    apply(s, { op: 'renew', client: A, lock: 'back', ttl: 20 }, 0);
    apply(s, { op: 'renew', client: A, lock: 'back', ttl: 10 }, 0);
    expect(s.locks.dueLeases(10)).toEqual([['back', 1]]);
    expect(s.locks.nextLeaseEnd()).toBe(Infinity);
  });

  it('keeps the right leases when positions move (a compaction) and when renewals leave stale entries behind', () => {
    const s = createState();
    for (let i = 0; i < 3000; i++) apply(s, { op: 'preempt', client: A, lock: `m${i}`, ttl: 10_000 + i }, 0);
    expect(s.locks.nextLeaseEnd()).toBe(10_000); // builds the heap
    // Release most (holes outnumber live locks), then a grant compacts: positions move.
    for (let i = 0; i < 2900; i++) apply(s, { op: 'release', client: A, lock: `m${i}` }, 1);
    apply(s, { op: 'preempt', client: B, lock: 'fresh', ttl: 50_000 }, 1);
    expect(s.locks.nextLeaseEnd()).toBe(12_900);
    // Renewing pushes new entries; the old ones must not fire.
    for (let k = 0; k < 5; k++) for (let i = 2900; i < 3000; i++) apply(s, { op: 'renew', client: A, lock: `m${i}`, ttl: 100_000 + k }, 2);
    expect(s.locks.nextLeaseEnd()).toBe(50_001);
    expect(s.locks.dueLeases(60_000)).toEqual([['fresh', 3001]]);
    expect(s.locks.dueLeases(100_006).map(([lock]) => lock).sort()).toEqual(Array.from({ length: 100 }, (_, i) => `m${2900 + i}`).sort());
    expect(s.locks.nextLeaseEnd()).toBe(Infinity);
  });
});

describe('a snapshot loaded into a table that already has its indexes', () => {
  it('adds its leases to the lease clock and its session locks to their clients', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: A, lock: 'here', ttl: 500 }, 0);
    apply(s, { op: 'preempt', client: B, lock: 'mine', ttl: null }, 0);
    expect(s.locks.nextLeaseEnd()).toBe(500); // both indexes built
    expect(s.locks.sessionLocks(B)).toEqual(['mine']);
    const other = createState();
    apply(other, { op: 'preempt', client: C, lock: 'soon', ttl: 100 }, 0);
    apply(other, { op: 'preempt', client: B, lock: 'also', ttl: null }, 0);
    restore(viaCodec(snapshot(other)), s);
    expect(s.locks.nextLeaseEnd()).toBe(100);
    expect(s.locks.sessionLocks(B).sort()).toEqual(['also', 'mine']);
  });
});
