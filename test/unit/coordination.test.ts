/**
 * The pure lock table beyond one owner: shared holds [LP-20], semaphores
 * [LP-21] and several locks at once [LP-22], rule by rule, then properties
 * over random mixes of every kind (fast-check): exclusion per mode, at most
 * `limit` holders, all-or-nothing grants, arrival order (no later request
 * passes an earlier waiter it shares a lock with), no deadlock (releasing
 * every hold grants every waiter), and tokens rising.
 */
import fc from 'fast-check';
import { replaysFromSnapshot, unchangedWhenNoChange, viaCodec } from '../helpers/table-properties.js';
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../../src/codec/frame.js';
import { commandError } from '../../src/core/command-check.js';
import { apply, check, createState, dueLeases, heldAlone, heldInPart, heldShared, heldWithLimit, heldWithoutLimit, nextLeaseEnd, restore, snapshot, validate, type ClientId, type Command, type Outcome, type Reply, type Snapshot, type TableState } from '../../src/core/lock-table.js';
import { formatCheck, formatReply, parseCheck, parseLockReply } from '../../src/protocol/reply.js';


const A = 10001;
const B = 20001;
const C = 30001;
const D = 40001;

const run = (s: TableState, cmd: Command, now = 1000): Outcome => apply(s, cmd, now);
const line = (r: Reply | null): string => (r === null ? 'none' : formatReply(r));
const checkLine = (s: TableState, lock: string, now = 1000): string => formatCheck(check(s, lock, now));

describe('shared holds [LP-20]', () => {
  it('any number share a lock; each grant has its own token; check lists them, the newest token last', () => {
    const s = createState();
    expect(line(run(s, { op: 'preempt', client: A, lock: 'r', ttl: null, shared: true }).reply)).toBe(`PreemptLock Success owner=${A} token=1`);
    expect(line(run(s, { op: 'acquire', client: B, lock: 'r', ttl: null, timeout: 0, shared: true }).reply)).toBe(`AcquireLock Success owner=${B} token=2`);
    expect(checkLine(s, 'r')).toBe(`CheckLock:Shared:2 token=2 owners=${A},${B}`);
    expect(parseCheck(checkLine(s, 'r'))).toEqual({ held: true, owner: B, token: 2, ttlLeft: null, holders: [A, B], limit: null });
    // [LP-7] validate: any current holder's token
    expect(validate(s, 'r', 1)).toEqual({ valid: true });
    expect(validate(s, 'r', 2)).toEqual({ valid: true });
    expect(validate(s, 'r', 3)).toEqual({ valid: false, owner: B, token: 2 });
  });

  it('one alone waits for every shared holder; shared requests after it wait behind it (no later request passes it)', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'r', ttl: null, shared: true });
    // alone: refused by preempt (the newest holder named), queued by acquire
    expect(line(run(s, { op: 'preempt', client: B, lock: 'r', ttl: null }).reply)).toBe(`PreemptLock Failed owner=${A}`);
    expect(run(s, { op: 'acquire', client: B, lock: 'r', ttl: null, timeout: null }).waits).toEqual({ client: B, lock: 'r' });
    // an earlier waiter wants it alone: a shared request now waits too, or fails
    expect(line(run(s, { op: 'preempt', client: C, lock: 'r', ttl: null, shared: true }).reply)).toBe(`PreemptLock Failed owner=${A}`);
    expect(run(s, { op: 'acquire', client: C, lock: 'r', ttl: null, timeout: null, shared: true }).waits).toEqual({ client: C, lock: 'r' });
    const out = run(s, { op: 'release', client: A, lock: 'r' });
    expect(out.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${B} token=2`]);
    expect(checkLine(s, 'r')).toBe(`CheckLock:Lock:${B} token=2`);
    const next = run(s, { op: 'release', client: B, lock: 'r' });
    expect(next.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`]);
    expect(checkLine(s, 'r')).toBe(`CheckLock:Shared:1 token=3 owners=${C}`);
  });

  it('shared waiters queued together are granted together', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'r', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'r', ttl: null, timeout: null, shared: true });
    run(s, { op: 'acquire', client: C, lock: 'r', ttl: null, timeout: null, shared: true });
    run(s, { op: 'acquire', client: D, lock: 'r', ttl: null, timeout: null });
    const out = run(s, { op: 'disconnect', client: A });
    expect(out.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${B} token=2`, `AcquireLock Success owner=${C} token=3`]);
    expect(s.waiting.get(D)).toBe('r');
  });

  it('release and renew act on the caller\'s own hold; a holder asking again gets its own token; no upgrade or downgrade', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'r', ttl: null, shared: true });
    run(s, { op: 'preempt', client: B, lock: 'r', ttl: null, shared: true });
    expect(line(run(s, { op: 'preempt', client: A, lock: 'r', ttl: 500, shared: true }).reply)).toBe(`PreemptLock Success owner=${A} token=1`); // [LP-6]
    expect(line(run(s, { op: 'renew', client: B, lock: 'r', ttl: 700 }).reply)).toBe('RenewLock Success token=2');
    expect(check(s, 'r', 1000)).toMatchObject({ owner: B, ttlLeft: 700 });
    expect(line(run(s, { op: 'renew', client: C, lock: 'r', ttl: 700 }).reply)).toBe(`RenewLock Failed owner=${B}`);
    expect(line(run(s, { op: 'release', client: C, lock: 'r' }).reply)).toBe(`ReleaseLock Failed owner=${B}`);
    expect(line(run(s, { op: 'preempt', client: A, lock: 'r', ttl: null }).reply)).toBe(`Error: ${heldShared('r')}`);
    expect(line(run(s, { op: 'release', client: B, lock: 'r' }).reply)).toBe('ReleaseLock Success');
    expect(checkLine(s, 'r')).toBe(`CheckLock:Shared:1 token=1 owners=${A}`);
    run(s, { op: 'preempt', client: C, lock: 'x', ttl: null });
    expect(line(run(s, { op: 'preempt', client: C, lock: 'x', ttl: null, shared: true }).reply)).toBe(`Error: ${heldAlone('x')}`);
    expect(line(run(s, { op: 'release', client: A, lock: 'r' }).reply)).toBe('ReleaseLock Success');
    expect(checkLine(s, 'r')).toBe('CheckLock:Free');
  });

  it('[LP-8] a session hold ends with its connection, a lease with its time; expire names the hold by its token', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'r', ttl: null, shared: true }, 0);
    run(s, { op: 'preempt', client: B, lock: 'r', ttl: 100, shared: true }, 0);
    expect(nextLeaseEnd(s)).toBe(100);
    run(s, { op: 'disconnect', client: A }, 10);
    expect(checkLine(s, 'r', 10)).toBe(`CheckLock:Shared:1 token=2 owners=${B}`);
    expect(dueLeases(s, 99)).toEqual([]);
    expect(dueLeases(s, 100)).toEqual([['r', 2]]);
    expect(run(s, { op: 'expire', lock: 'r', token: 2 }, 99).changed).toBe(false); // not yet due
    expect(run(s, { op: 'expire', lock: 'r', token: 2 }, 100).changed).toBe(true);
    expect(checkLine(s, 'r', 100)).toBe('CheckLock:Free');
    expect(s.owned.size).toBe(0);
  });
});

describe('semaphores [LP-21]', () => {
  it('at most n holders, each with its own token; check shows k/n', () => {
    const s = createState();
    expect(line(run(s, { op: 'preempt', client: A, lock: 'sem', ttl: null, limit: 2 }).reply)).toBe(`PreemptLock Success owner=${A} token=1`);
    expect(line(run(s, { op: 'acquire', client: B, lock: 'sem', ttl: null, timeout: 0, limit: 2 }).reply)).toBe(`AcquireLock Success owner=${B} token=2`);
    expect(checkLine(s, 'sem')).toBe(`CheckLock:Held:2/2 token=2 owners=${A},${B}`);
    expect(parseCheck(checkLine(s, 'sem'))).toEqual({ held: true, owner: B, token: 2, ttlLeft: null, holders: [A, B], limit: 2 });
    expect(line(run(s, { op: 'preempt', client: C, lock: 'sem', ttl: null, limit: 2 }).reply)).toBe(`PreemptLock Failed owner=${B}`);
    expect(run(s, { op: 'acquire', client: C, lock: 'sem', ttl: null, timeout: null, limit: 2 }).waits).not.toBeNull();
    const out = run(s, { op: 'release', client: A, lock: 'sem' });
    expect(out.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`]);
    expect(checkLine(s, 'sem')).toBe(`CheckLock:Held:2/2 token=3 owners=${B},${C}`);
  });

  it('every request names the same limit while the lock is held or waited for', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'sem', ttl: null, limit: 3 });
    expect(line(run(s, { op: 'preempt', client: B, lock: 'sem', ttl: null, limit: 2 }).reply)).toBe(`Error: ${heldWithLimit('sem', 3)}`);
    expect(line(run(s, { op: 'preempt', client: B, lock: 'sem', ttl: null }).reply)).toBe('Error: sem is held with limit=3');
    expect(line(run(s, { op: 'acquire', client: B, lock: 'sem', ttl: null, timeout: null, shared: true }).reply)).toBe('Error: sem is held with limit=3');
    expect(line(run(s, { op: 'preempt', client: B, lock: 'sem', ttl: null, locks: ['sem', 'other'] }).reply)).toBe('Error: sem is held with limit=3');
    run(s, { op: 'preempt', client: A, lock: 'one', ttl: null });
    expect(line(run(s, { op: 'preempt', client: B, lock: 'one', ttl: null, limit: 3 }).reply)).toBe(`Error: ${heldWithoutLimit('one')}`);
    run(s, { op: 'preempt', client: A, lock: 'sh', ttl: null, shared: true });
    expect(line(run(s, { op: 'preempt', client: B, lock: 'sh', ttl: null, limit: 3 }).reply)).toBe('Error: sh is held without a limit');
    // once free and unwaited, any limit again
    run(s, { op: 'release', client: A, lock: 'sem' });
    expect(line(run(s, { op: 'preempt', client: B, lock: 'sem', ttl: null, limit: 5 }).reply)).toBe(`PreemptLock Success owner=${B} token=4`);
  });

  it('revoke ends every hold and names the newest', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'sem', ttl: null, limit: 3 });
    run(s, { op: 'preempt', client: B, lock: 'sem', ttl: 50, limit: 3 });
    expect(line(run(s, { op: 'revoke', lock: 'sem' }).reply)).toBe(`Revoke owner=${B} token=2`);
    expect(checkLine(s, 'sem')).toBe('CheckLock:Free');
    expect(s.owned.size).toBe(0);
  });
});

describe('revoke and limits with several holders', () => {
  it('[LP-21] a revoke ends the holds there were; the waiters it lets in keep theirs', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 's', ttl: null, limit: 2 });
    run(s, { op: 'preempt', client: B, lock: 's', ttl: null, limit: 2 });
    run(s, { op: 'acquire', client: C, lock: 's', ttl: null, timeout: null, limit: 2 });
    run(s, { op: 'acquire', client: D, lock: 's', ttl: null, timeout: null, limit: 2 });
    const out = run(s, { op: 'revoke', lock: 's' });
    expect(line(out.reply)).toBe(`Revoke owner=${B} token=2`);
    expect(out.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`, `AcquireLock Success owner=${D} token=4`]);
    expect(checkLine(s, 's')).toBe(`CheckLock:Held:2/2 token=4 owners=${C},${D}`);
    expect(s.owned).toEqual(new Map([[C, 1], [D, 1]]));
  });

  it('the per-client limit counts a hold joined by preempt; the waiters limit counts the queue of a free lock', () => {
    const s = createState();
    run(s, { op: 'limits', limits: { maxLocksPerClient: 1, maxWaitersPerLock: 1 } });
    run(s, { op: 'preempt', client: A, lock: 'r1', ttl: null, shared: true });
    run(s, { op: 'preempt', client: A, lock: 'r2', ttl: null, shared: true });
    expect(run(s, { op: 'preempt', client: B, lock: 'own', ttl: null }).reply).toMatchObject({ ok: true });
    expect(line(run(s, { op: 'preempt', client: B, lock: 'r1', ttl: null, shared: true }).reply)).toMatch(/^Error: this client holds 1 locks, the limit/);
    // a free lock that a waiter for several wants: its queue counts
    const t = createState();
    run(t, { op: 'preempt', client: A, lock: 'b', ttl: null });
    run(t, { op: 'acquire', client: B, lock: 'a', ttl: null, timeout: null, locks: ['a', 'b'] });
    run(t, { op: 'limits', limits: { maxLocksPerClient: 5, maxWaitersPerLock: 1 } });
    expect(line(run(t, { op: 'acquire', client: C, lock: 'a', ttl: null, timeout: null }).reply)).toMatch(/^Error: 1 clients already wait on this lock/);
  });
});

describe('several locks at once [LP-22]', () => {
  it('all or nothing, one token for all; a refusal names the first lock not available', () => {
    const s = createState();
    expect(line(run(s, { op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'b', 'c'] }).reply)).toBe(`PreemptLock Success owner=${A} token=1`);
    for (const l of ['a', 'b', 'c']) expect(checkLine(s, l)).toBe(`CheckLock:Lock:${A} token=1`);
    expect(validate(s, 'b', 1)).toEqual({ valid: true });
    const refused = run(s, { op: 'preempt', client: B, lock: 'd', ttl: null, locks: ['d', 'c', 'e'] });
    expect(line(refused.reply)).toBe(`PreemptLock Failed owner=${A} lock=c`);
    expect(parseLockReply(line(refused.reply))).toEqual({ op: 'preempt', ok: false, owner: A, lock: 'c' });
    expect(checkLine(s, 'd')).toBe('CheckLock:Free'); // nothing taken
    expect(line(run(s, { op: 'acquire', client: B, lock: 'd', ttl: null, timeout: 0, locks: ['d', 'b'] }).reply)).toBe(`AcquireLock Timeout owner=${A} lock=b`);
    // [LP-6] the holder of all of them asking again: the same token; part of them: refused
    expect(line(run(s, { op: 'preempt', client: A, lock: 'a', ttl: 900, locks: ['a', 'b', 'c'] }).reply)).toBe(`PreemptLock Success owner=${A} token=1`);
    expect(check(s, 'c', 1000)).toMatchObject({ ttlLeft: 900 });
    expect(line(run(s, { op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'x'] }).reply)).toBe(`Error: ${heldInPart('a')}`);
    // one of them alone: as LP-6 for one lock
    expect(line(run(s, { op: 'preempt', client: A, lock: 'b', ttl: null }).reply)).toBe(`PreemptLock Success owner=${A} token=1`);
  });

  it('release of several: all if the caller holds every one, else nothing, naming the first it does not hold', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'b'] });
    run(s, { op: 'preempt', client: B, lock: 'c', ttl: null });
    expect(line(run(s, { op: 'release', client: A, lock: 'a', locks: ['a', 'c', 'd'] }).reply)).toBe(`ReleaseLock Failed owner=${B} lock=c`);
    expect(line(run(s, { op: 'release', client: A, lock: 'd', locks: ['d', 'a'] }).reply)).toBe('ReleaseLock Failed owner=none lock=d');
    expect(checkLine(s, 'a')).toBe(`CheckLock:Lock:${A} token=1`);
    expect(line(run(s, { op: 'release', client: A, lock: 'b', locks: ['b', 'a'] }).reply)).toBe('ReleaseLock Success');
    expect(checkLine(s, 'a')).toBe('CheckLock:Free');
    expect(checkLine(s, 'b')).toBe('CheckLock:Free');
  });

  it('a waiter holds none of its locks while it waits, and a free lock it wants fails a later preempt (owner=none)', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'b', ttl: null });
    expect(run(s, { op: 'acquire', client: B, lock: 'a', ttl: null, timeout: null, locks: ['a', 'b'] }).waits).toEqual({ client: B, lock: 'a' });
    expect(checkLine(s, 'a')).toBe('CheckLock:Free');
    expect(line(run(s, { op: 'preempt', client: C, lock: 'a', ttl: null }).reply)).toBe('PreemptLock Failed owner=none');
    expect(line(run(s, { op: 'acquire', client: C, lock: 'a', ttl: null, timeout: 0 }).reply)).toBe('AcquireLock Timeout owner=none');
    run(s, { op: 'acquire', client: C, lock: 'a', ttl: null, timeout: null }); // queued behind B
    const out = run(s, { op: 'release', client: A, lock: 'b' });
    expect(out.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${B} token=2`]);
    expect(checkLine(s, 'a')).toBe(`CheckLock:Lock:${B} token=2`);
    expect(checkLine(s, 'b')).toBe(`CheckLock:Lock:${B} token=2`);
    const last = run(s, { op: 'release', client: B, lock: 'a', locks: ['a', 'b'] });
    expect(last.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`]);
  });

  it('a waiter for several that times out or goes away lets those behind it through', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'b', ttl: null });
    run(s, { op: 'acquire', client: B, lock: 'a', ttl: null, timeout: 50, locks: ['a', 'b'] });
    run(s, { op: 'acquire', client: C, lock: 'a', ttl: null, timeout: null });
    const t = run(s, { op: 'timeout', client: B, lock: 'a', deadline: 1050 }, 1050);
    expect(line(t.reply)).toBe(`AcquireLock Timeout owner=${A} lock=b`);
    expect(t.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=2`]);
    run(s, { op: 'acquire', client: D, lock: 'c', ttl: null, timeout: null, locks: ['c', 'b'] });
    run(s, { op: 'acquire', client: B, lock: 'c', ttl: null, timeout: null });
    const gone = run(s, { op: 'disconnect', client: D });
    expect(gone.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${B} token=3`]);
  });

  it('a waiter for several is not granted a free lock that an earlier waiter wants', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'n', ttl: null });
    run(s, { op: 'preempt', client: B, lock: 'l', ttl: null });
    run(s, { op: 'acquire', client: C, lock: 'm', ttl: null, timeout: null, locks: ['m', 'n'] }); // m free, but C waits for n too
    run(s, { op: 'acquire', client: D, lock: 'l', ttl: null, timeout: null, locks: ['l', 'm'] }); // behind C on m
    const out = run(s, { op: 'release', client: B, lock: 'l' });
    expect(out.wakes).toEqual([]); // l and m are free, but C came first for m
    expect(checkLine(s, 'm')).toBe('CheckLock:Free');
    const next = run(s, { op: 'release', client: A, lock: 'n' });
    expect(next.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`]);
    const last = run(s, { op: 'release', client: C, lock: 'm', locks: ['m', 'n'] });
    expect(last.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${D} token=4`]);
  });

  it('two waiters that want the same locks in opposite orders do not deadlock', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'x', ttl: null, locks: ['x', 'y'] });
    run(s, { op: 'acquire', client: B, lock: 'x', ttl: null, timeout: null, locks: ['x', 'y'] });
    run(s, { op: 'acquire', client: C, lock: 'y', ttl: null, timeout: null, locks: ['y', 'x'] });
    const one = run(s, { op: 'release', client: A, lock: 'x', locks: ['x', 'y'] });
    expect(one.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${B} token=2`]);
    const two = run(s, { op: 'disconnect', client: B });
    expect(two.wakes.map((w) => line(w.reply))).toEqual([`AcquireLock Success owner=${C} token=3`]);
  });

  it('the command check: 2 to 16 distinct names starting with lock, one mode, values only alone', () => {
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'b'] })).toBeNull();
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a'] })).toMatch(/locks must be 2 to 16/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'a'] })).toMatch(/distinct/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['b', 'a'] })).toMatch(/start with lock/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, locks: ['a', 'b c'] })).toMatch(/lock names/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, shared: true, limit: 2 })).toMatch(/exclude each other/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, shared: false })).toMatch(/shared must be/);
    expect(commandError({ op: 'acquire', client: A, lock: 'a', ttl: null, timeout: null, limit: 10_001 })).toMatch(/limit must be/);
    expect(commandError({ op: 'preempt', client: A, lock: 'a', ttl: null, limit: 2, value: 'v' })).toMatch(/a value goes with a lock held alone/);
    expect(commandError({ op: 'release', client: A, lock: 'a', locks: ['a', 'b'] })).toBeNull();
  });
});

describe('snapshots carry holders and queues of every kind', () => {
  it('through the codec; a snapshot that says otherwise does not load', () => {
    const s = createState();
    run(s, { op: 'preempt', client: A, lock: 'sh', ttl: 300, shared: true });
    run(s, { op: 'preempt', client: B, lock: 'sh', ttl: null, shared: true });
    run(s, { op: 'acquire', client: C, lock: 'sh', ttl: null, timeout: 500 });
    run(s, { op: 'preempt', client: A, lock: 'sem', ttl: null, limit: 1 });
    run(s, { op: 'acquire', client: D, lock: 'sem', ttl: null, timeout: null, limit: 1 });
    run(s, { op: 'preempt', client: B, lock: 'b', ttl: null });
    run(s, { op: 'acquire', client: D + 1, lock: 'a', ttl: 9, timeout: null, locks: ['a', 'b'], value: 'v' });
    const snap = viaCodec(snapshot(s));
    const r = restore(snap);
    expect(snapshot(r)).toEqual(snapshot(s));
    expect(r.waiting).toEqual(s.waiting);
    expect(r.owned).toEqual(s.owned);
    expect(checkLine(r, 'sh')).toBe(`CheckLock:Shared:2 token=2 owners=${A},${B}`);
    // and it goes on alike: B's release hands b, with a, to the waiter for both
    const a = run(s, { op: 'release', client: B, lock: 'b' });
    const b = run(r, { op: 'release', client: B, lock: 'b' });
    expect(b).toEqual(a);
    expect(snapshot(r)).toEqual(snapshot(s));
    const wire = JSON.parse(JSON.stringify(encodeSnapshot(snapshot(s)))) as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>): (() => Snapshot) => () => decodeSnapshot({ ...wire, ...patch } as never);
    expect(bad({ groups: [['sh', null, []]] })).toThrow(/malformed snapshot groups/);
    expect(bad({ groups: [['sh', 1, [[A, 1, null], [B, 2, null]]]] })).toThrow(/groups/);
    expect(bad({ groups: [['sh', null, [[A, 999, null]]]] })).toThrow(/groups/); // a token at or above nextToken
    expect(bad({ queues: [['q', [[A, null, null, null, { limit: 0 }]]]] })).toThrow(/malformed snapshot queues/);
    expect(bad({ queues: [['q', [[A, null, null, null, { locks: ['q'] }]]]] })).toThrow(/queues/);
    expect(bad({ queues: [['q', [[A, null, null, null, { locks: ['x', 'y'] }]]]] })).toThrow(/queues/); // not in a queue of its locks
    expect(bad({ queues: [['q', [[A, null, null], [A, null, null]]]] })).toThrow(/queues/); // a client twice in one queue
    expect(bad({ groups: [['sh', null, [[A, 1, null], [A, 2, null]]]] })).toThrow(/groups/); // a holder twice
    expect(bad({ groups: [['sh', null, [[A, 2, null], [B, 1, null]]]] })).toThrow(/groups/); // not in grant order
  });
});

// ---- properties over random mixes of every kind ----

const clients = [10001, 10002, 20001, 30001, 40001];
const names = ['a', 'b', 'c', 'd'];
const kindArb = fc.oneof(
  fc.constant({}),
  fc.constant({ shared: true as const }),
  // Semaphores on c and d only, with one limit each mostly, so that most semaphore requests agree.
  fc.constant({ limit: 2 }),
  fc.constant({ limit: 3 }),
  fc.shuffledSubarray(names, { minLength: 2, maxLength: 3 }).map((locks) => ({ locks })),
);
const lockCmdArb: fc.Arbitrary<Command> = fc
  .tuple(fc.constantFrom('preempt' as const, 'acquire' as const, 'acquire' as const), fc.constantFrom(...clients), fc.constantFrom(...names), kindArb, fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }), fc.option(fc.integer({ min: 0, max: 80 }), { nil: null }))
  .map(([op, client, lock, kind, ttl, timeout]) => {
    const k = 'locks' in kind ? { locks: kind.locks } : kind;
    const first = 'locks' in kind ? (kind.locks[0] as string) : lock;
    return op === 'preempt' ? ({ op, client, lock: first, ttl, ...k } as Command) : ({ op, client, lock: first, ttl, timeout, ...k } as Command);
  });
const mixArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: lockCmdArb },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...names) }) },
  fc.shuffledSubarray(names, { minLength: 2, maxLength: 3 }).chain((locks) => fc.record({ op: fc.constant('release' as const), client: fc.constantFrom(...clients), lock: fc.constant(locks[0] as string), locks: fc.constant(locks) })),
  fc.record({ op: fc.constant('renew' as const), client: fc.constantFrom(...clients), lock: fc.constantFrom(...names), ttl: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ op: fc.constant('disconnect' as const), client: fc.constantFrom(...clients) }),
  fc.record({ op: fc.constant('revoke' as const), lock: fc.constantFrom(...names) }),
);
/** Each step: a command and how much log time passes before it; due leases and waits are ended as the sequencer would. */
const mixStepsArb = fc.array(fc.tuple(mixArb, fc.integer({ min: 0, max: 15 })), { maxLength: 100 });

/** Every holder of `lock` now, as [client, token]. */
function holdersOf(s: TableState, lock: string): Array<[ClientId, number]> {
  const p = s.locks.find(lock);
  if (p !== -1) return [[s.locks.owner(p), s.locks.token(p)]];
  return (s.groups.get(lock)?.holds ?? []).map((h) => [h.client, h.token]);
}

function checkMixInvariants(s: TableState): void {
  const owned = new Map<ClientId, number>();
  for (const lock of names) {
    const p = s.locks.find(lock);
    const g = s.groups.get(lock);
    expect(p !== -1 && g !== undefined).toBe(false); // held alone or among several, never both
    if (g !== undefined) {
      expect(g.holds.length).toBeGreaterThan(0);
      if (g.limit !== null) expect(g.holds.length).toBeLessThanOrEqual(g.limit); // [LP-21] at most limit
      const cs = g.holds.map((h) => h.client);
      expect(new Set(cs).size).toBe(cs.length);
      const ts = g.holds.map((h) => h.token);
      expect([...ts].sort((x, y) => x - y)).toEqual(ts); // grant order, newest last
      expect(s.values.has(lock)).toBe(false); // [LP-18] values only alone
    }
    for (const [c, t] of holdersOf(s, lock)) {
      owned.set(c, (owned.get(c) ?? 0) + 1);
      expect(t).toBeLessThan(s.nextToken);
    }
    // The head of a queue is never a waiter that could be granted now: promotion is eager, so waiting is never for nothing.
    const head = s.locks.waiters(lock)[0];
    if (head !== undefined) {
      const mine = head.locks ?? [lock];
      const all = mine.every((l) => holdersOf(s, l).length === 0 && s.locks.waiters(l)[0]?.client === head.client);
      const g2 = s.groups.get(lock);
      const joinable = s.locks.find(lock) === -1 && (g2 === undefined || (head.shared === true ? g2.limit === null : head.limit !== undefined && g2.holds.length < (g2.limit ?? 0)));
      expect(head.locks !== undefined ? all : joinable).toBe(false);
    }
  }
  expect(new Map([...s.owned].sort())).toEqual(new Map([...owned].sort()));
  // Each waiting client is in the queue of each of its locks, once, and in no other.
  const seen = new Map<ClientId, string[]>();
  for (const lock of names) for (const w of s.locks.waiters(lock)) seen.set(w.client, [...(seen.get(w.client) ?? []), lock]);
  for (const [c, ls] of seen) {
    const first = s.waiting.get(c) as string;
    expect(first).toBeDefined();
    const w = s.locks.waiters(first).find((x) => x.client === c);
    expect([...(w?.locks ?? [first])].sort()).toEqual(ls.sort());
  }
  expect(seen.size).toBe(s.waiting.size);
}

/** Apply `cmd`, then what the sequencer's duties would log at `now`: due lease ends and due waits. */
function step(s: TableState, cmd: Command, now: number): Outcome[] {
  const outs = [apply(s, cmd, now)];
  for (const [lock, token] of dueLeases(s, now)) outs.push(apply(s, { op: 'expire', lock, token }, now));
  for (const [first, ws] of [...s.locks.queueEntries()]) for (const w of [...ws]) if (w.deadline !== null && w.deadline <= now && (w.locks?.[0] ?? first) === first) outs.push(apply(s, { op: 'timeout', client: w.client, lock: first }, now));
  return outs;
}

describe('properties beyond one owner', () => {
  it('exclusion per mode, at most limit, all or nothing, arrival order, tokens rising, on every step', () => {
    fc.assert(
      fc.property(mixStepsArb, (steps) => {
        const s = createState();
        let now = 0;
        let maxToken = 0;
        let arrival = 0;
        /** Each waiting client: when it began to wait, and the locks it waits for. */
        const waits = new Map<ClientId, { at: number; locks: readonly string[] }>();
        const granted = (client: ClientId, locks: readonly string[], token: number): void => {
          // All or nothing: every lock named is the client's, with the one token.
          for (const l of locks) expect(holdersOf(s, l)).toContainEqual([client, token]);
          // Arrival order: no waiter that shares a lock with this grant and came earlier is still waiting.
          const mine = waits.get(client)?.at ?? Infinity;
          for (const [c, w] of waits) if (c !== client && w.at < mine && w.locks.some((l) => locks.includes(l)) && s.waiting.has(c)) expect.fail(`client ${client} granted ${locks.join(',')} before earlier waiter ${c} (${w.locks.join(',')})`);
          waits.delete(client);
        };
        for (const [cmd, dt] of steps) {
          now += dt;
          const outs = step(s, cmd, now);
          const [first] = outs as [Outcome];
          if (first.waits !== null && (cmd.op === 'acquire' || cmd.op === 'preempt')) waits.set(cmd.client, { at: arrival++, locks: cmd.locks ?? [cmd.lock] });
          const r = first.reply;
          if (r !== null && r.ok && (r.op === 'preempt' || r.op === 'acquire') && (cmd.op === 'preempt' || cmd.op === 'acquire')) {
            if (r.token > maxToken) {
              granted(cmd.client, cmd.locks ?? [cmd.lock], r.token);
              maxToken = r.token;
            }
          }
          for (const out of outs) {
            if (out.reply !== null && out.reply.op === 'acquire' && !out.reply.ok) waits.delete((cmd as { client?: ClientId }).client ?? -1);
            for (const w of out.wakes) {
              if (w.reply.op === 'acquire' && w.reply.ok) {
                expect(w.reply.token).toBeGreaterThan(maxToken); // [LP-7]
                granted(w.client, waits.get(w.client)?.locks ?? [], w.reply.token);
                maxToken = w.reply.token;
              } else waits.delete(w.client);
            }
          }
          for (const c of [...waits.keys()]) if (!s.waiting.has(c)) waits.delete(c); // withdrawn (disconnect, timeout)
          expect(s.nextToken).toBeGreaterThan(maxToken);
          checkMixInvariants(s);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('no deadlock: once every holder lets go and nothing new comes, every waiter is granted in turn', () => {
    fc.assert(
      fc.property(mixStepsArb, (steps) => {
        const s = createState();
        let now = 0;
        for (const [cmd, dt] of steps) {
          now += dt;
          step(s, cmd, now);
        }
        // From here no time passes (no wait times out) and nothing new is asked: holders only release.
        const waiting = new Set(s.waiting.keys());
        const grantedTo = new Set<ClientId>();
        for (let round = 0; round < 100 && (s.waiting.size > 0 || names.some((l) => holdersOf(s, l).length > 0)); round++) {
          for (const lock of names) {
            for (const [c] of holdersOf(s, lock)) {
              const out = apply(s, { op: 'release', client: c, lock }, now);
              for (const w of out.wakes) if (w.reply.op === 'acquire' && w.reply.ok) grantedTo.add(w.client);
            }
          }
          checkMixInvariants(s);
        }
        expect(s.waiting.size).toBe(0);
        for (const c of waiting) expect(grantedTo.has(c)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a replica restored from a snapshot taken midway and fed the rest of the log reaches the same state', () => {
    fc.assert(
      fc.property(mixStepsArb, fc.nat(), (steps, cutSeed) => replaysFromSnapshot(steps, cutSeed, checkMixInvariants)),
      { numRuns: 300 },
    );
  });

  it('commands that report no change leave the state untouched', () => {
    fc.assert(
      fc.property(mixStepsArb, (steps) => unchangedWhenNoChange(steps)),
      { numRuns: 200 },
    );
  });
});
